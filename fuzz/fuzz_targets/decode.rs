//! Arbitrary bytes into `ofp::decode`: never panics; whatever decodes re-encodes to exactly
//! the bytes it consumed, and those decode again to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdpswitch::ofp::{decode, encode, Decoded};

fuzz_target!(|data: &[u8]| {
    let Ok(Decoded::Message { msg, len }) = decode(data) else { return };
    let mut again = Vec::new();
    if let Err(e) = encode(&msg, &mut again) {
        panic!("{msg:?} decoded but does not encode: {e}");
    }
    assert_eq!(again, data[..len], "re-encoding differs for {msg:?}");
    assert_eq!(decode(&again), Ok(Decoded::Message { msg, len }));
});
