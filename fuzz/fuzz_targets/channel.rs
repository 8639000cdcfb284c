//! Random byte chunks and time steps into an `ofp::Channel`: never panics, and everything it
//! transmits decodes as whole OpenFlow messages.
//!
//! Input: records of `[chunk length, time step in 100 ms units, chunk bytes...]`.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use xdpswitch::ofp::{decode, Channel, ChannelConfig, Decoded};

fn check_output(ch: &mut Channel) {
    let mut out = Vec::new();
    ch.poll_transmit(&mut out);
    let mut at = 0;
    while at < out.len() {
        match decode(&out[at..]) {
            Ok(Decoded::Message { len, .. }) => at += len,
            other => panic!("channel sent bytes that do not decode: {other:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let cfg = ChannelConfig { max_input: 16 * 1024, ..ChannelConfig::default() };
    let mut ch = Channel::new(now, cfg);
    let mut rest = data;
    while let [len, step, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        ch.handle_input(now, &tail[..n]);
        rest = &tail[n..];
        now += Duration::from_millis(100) * u32::from(*step);
        if ch.poll_timeout().is_some_and(|t| t <= now) {
            ch.handle_timeout(now);
        }
        check_output(&mut ch);
        while ch.poll_event().is_some() {}
        if ch.is_closed() {
            assert_eq!(ch.poll_timeout(), None);
        }
    }
});
