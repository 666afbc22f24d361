//! Batched-sync frames, deflated and as raw CBOR: decoding never panics, whatever decodes
//! round-trips through its CBOR form, and the guard of a pushed document's data never panics.
//! Inflation runs with a 64 KiB limit (the server's is 16 MiB, the same code): inputs that
//! inflate to the limit are easy to find and would otherwise take most of the time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sync_core::batch::{Frame, check_push};
use sync_core::guard::Limits;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::from_cbor(data) {
        let again = Frame::from_cbor(&frame.to_cbor()).expect("an encoded frame decodes");
        assert_eq!(again, frame);
        if let Frame::Push(push) = &frame {
            for doc in &push.docs {
                let _ = check_push(doc, &Limits::default());
            }
        }
    }
    let _ = Frame::decode_with_limit(data, 64 * 1024);
});
