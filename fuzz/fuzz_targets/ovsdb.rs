//! Arbitrary bytes into the OVSDB client core: a `Session` fed the input in two pieces never
//! panics, and every value the input holds that parses as an RFC 7047 datum emits JSON that
//! parses back to the same datum.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use xdpswitch::ovsdb::{Datum, Session};

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut s = Session::new("Open_vSwitch", Some("ovs_vswitchd"), now);
    if s.handle_input(now, &data[..cut]).is_ok() {
        let _ = s.handle_input(now, &data[cut..]);
    }
    while s.poll_event().is_some() {}
    let mut out = Vec::new();
    s.poll_transmit(&mut out);
    for v in serde_json::Deserializer::from_slice(data).into_iter::<serde_json::Value>() {
        let Ok(v) = v else { break };
        if let Ok(d) = Datum::from_json(&v) {
            let again = Datum::from_json(&serde_json::from_str(&d.to_json().to_string()).unwrap());
            assert_eq!(again.as_ref(), Ok(&d), "datum {v} does not round-trip");
        }
    }
});
