//! The exchange as one HTTP request: frames joined into a body, each prefixed by its length.
//!
//! Some networks (captive portals, old proxies) refuse WebSocket upgrades.
//! There the client posts every frame it would have sent as one body and
//! reads every frame the server would have sent from the answer. A frame is
//! a 4-byte big-endian length followed by the frame's bytes.

use super::BatchError;

/// The media type of a body of joined frames, both ways.
pub const BODY_CONTENT_TYPE: &str = "application/x-lianxin-batch";

/// Joins frames into one body.
pub fn join_frames<B: AsRef<[u8]>>(frames: &[B]) -> Vec<u8> {
    let mut body = Vec::with_capacity(frames.iter().map(|f| f.as_ref().len() + 4).sum());
    for f in frames {
        let f = f.as_ref();
        body.extend_from_slice(&(f.len() as u32).to_be_bytes());
        body.extend_from_slice(f);
    }
    body
}

/// Splits a body into its frames. A truncated body is an error naming where
/// it ends; an empty body has no frames.
pub fn split_frames(mut body: &[u8]) -> Result<Vec<&[u8]>, BatchError> {
    let mut frames = Vec::new();
    while !body.is_empty() {
        let Some((len, rest)) = body.split_first_chunk::<4>() else {
            return Err(BatchError::Cbor(format!(
                "the body ends inside a frame length ({} bytes left)",
                body.len()
            )));
        };
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(BatchError::Cbor(format!(
                "frame {} announces {len} bytes, the body holds {}",
                frames.len(),
                rest.len()
            )));
        }
        let (frame, rest) = rest.split_at(len);
        frames.push(frame);
        body = rest;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_a_body() {
        let frames: Vec<Vec<u8>> = vec![vec![1, 2, 3], vec![], vec![9; 300]];
        let body = join_frames(&frames);
        assert_eq!(body.len(), 3 * 4 + 303);
        let back = split_frames(&body).unwrap();
        assert_eq!(back, frames.iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert!(split_frames(&[]).unwrap().is_empty());
    }

    #[test]
    fn a_truncated_body_is_refused() {
        let body = join_frames(&[vec![7u8; 10]]);
        assert!(
            split_frames(&body[..8])
                .unwrap_err()
                .to_string()
                .contains("announces 10 bytes")
        );
        assert!(split_frames(&body[..2]).is_err());
    }
}
