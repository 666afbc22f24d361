//! automerge-repo v1 frames: decoding never panics, and whatever decodes re-encodes to a frame
//! that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sync_core::repo_protocol::{decode, decode_notification, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = decode(data) {
        let again = decode(&encode(&message)).expect("an encoded message decodes");
        assert_eq!(again, message);
    }
    let _ = decode_notification(data);
});
