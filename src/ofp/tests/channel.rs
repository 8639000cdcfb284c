//! `Channel` against a scripted fake controller on a manual clock.

use std::time::{Duration, Instant};

use super::*;
use crate::ofp::msg::{Hello, SwitchConfig};
use crate::ofp::multipart::{MultipartRequest, MultipartRequestBody};
use crate::ofp::{decode, encode, v10, Body, Decoded, ErrorCode, Experimenter, Message, Xid};

const SEC: Duration = Duration::from_secs(1);

fn cfg() -> ChannelConfig {
    ChannelConfig::default()
}

fn wire(version: u8, xid: u32, body: Body) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&Message { version, xid: Xid(xid), body }, &mut out).expect("encode");
    out
}

fn hello_bitmap(header_version: u8, versions: &[u8]) -> Vec<u8> {
    wire(header_version, 100, Body::Hello(Hello::with_versions(versions)))
}

fn hello_plain(version: u8) -> Vec<u8> {
    wire(version, 100, Body::Hello(Hello::default()))
}

/// Everything the channel wants to send, decoded (it must all decode).
fn sent(ch: &mut Channel) -> Vec<Message> {
    let mut buf = Vec::new();
    ch.poll_transmit(&mut buf);
    let mut msgs = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        match decode(&buf[at..]) {
            Ok(Decoded::Message { msg, len }) => {
                msgs.push(msg);
                at += len;
            }
            other => panic!("channel sent undecodable bytes: {other:?}"),
        }
    }
    msgs
}

fn events(ch: &mut Channel) -> Vec<ChannelEvent> {
    std::iter::from_fn(|| ch.poll_event()).collect()
}

/// A channel that has sent its HELLO and received `peer_hello`; its first outputs are drained.
fn ready(t0: Instant, peer_hello: &[u8]) -> Channel {
    let mut ch = Channel::new(t0, cfg());
    sent(&mut ch);
    ch.handle_input(t0, peer_hello);
    assert!(matches!(events(&mut ch)[..], [ChannelEvent::Ready { .. }]));
    ch
}

fn error_of(msg: &Message) -> (u16, u16, &[u8]) {
    match &msg.body {
        Body::Error(e) => (e.type_, e.code, &e.data[..]),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn our_hello_advertises_every_version() {
    let t0 = Instant::now();
    let mut ch = Channel::new(t0, cfg());
    let out = sent(&mut ch);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].version, 4);
    match &out[0].body {
        Body::Hello(h) => assert_eq!(h.versions(), Some(vec![1, 4])),
        other => panic!("{other:?}"),
    }
    assert_eq!(ch.version(), None);
    assert!(events(&mut ch).is_empty());
}

#[test]
fn versions_the_codec_cannot_speak_are_not_offered() {
    let t0 = Instant::now();
    let mut ch = Channel::new(t0, ChannelConfig { versions: vec![1, 5, 6], ..cfg() });
    let out = sent(&mut ch);
    assert!(matches!(&out[0].body, Body::Hello(h) if h.versions() == Some(vec![1])));
    ch.handle_input(t0, &hello_bitmap(6, &[4, 5, 6]));
    assert_eq!(events(&mut ch), [ChannelEvent::Closed { reason: CloseReason::HelloFailed }]);
}

#[test]
fn bitmap_peer_gets_the_highest_common_version() {
    let t0 = Instant::now();
    for (peer, want) in [(&[1u8, 4][..], 4), (&[1, 2, 3, 4, 5, 6][..], 4), (&[1, 2][..], 1), (&[4][..], 4)] {
        let mut ch = Channel::new(t0, cfg());
        ch.handle_input(t0, &hello_bitmap(6, peer));
        assert_eq!(events(&mut ch), [ChannelEvent::Ready { version: want }], "peer {peer:?}");
        assert_eq!(ch.version(), Some(want));
    }
}

#[test]
fn peer_without_bitmap_gets_min_of_header_and_ours() {
    let t0 = Instant::now();
    for (hv, want) in [(4u8, 4u8), (5, 4), (1, 1)] {
        let mut ch = Channel::new(t0, cfg());
        ch.handle_input(t0, &hello_plain(hv));
        assert_eq!(events(&mut ch), [ChannelEvent::Ready { version: want }], "header {hv}");
    }
    // A HELLO whose element is malformed counts as one without a bitmap.
    let mut ch = Channel::new(t0, cfg());
    ch.handle_input(t0, &[4, 0, 0, 0x0c, 0, 0, 0, 1, 0, 1, 0, 2]);
    assert_eq!(events(&mut ch), [ChannelEvent::Ready { version: 4 }]);
}

#[test]
fn incompatible_peers_get_hello_failed_then_close() {
    let t0 = Instant::now();
    for hello in [hello_plain(3), hello_bitmap(6, &[5, 6]), hello_bitmap(2, &[2])] {
        let mut ch = Channel::new(t0, cfg());
        sent(&mut ch);
        ch.handle_input(t0, &hello);
        assert_eq!(events(&mut ch), [ChannelEvent::Closed { reason: CloseReason::HelloFailed }]);
        assert!(ch.is_closed());
        let out = sent(&mut ch);
        assert_eq!(out.len(), 1);
        let (t, c, data) = error_of(&out[0]);
        assert_eq!((t, c), ErrorCode::OFPHFC_INCOMPATIBLE.v13());
        assert!(data.is_ascii() && !data.is_empty(), "{data:?}");
        assert_eq!(ch.poll_timeout(), None);
        // Closed: further input and commands change nothing.
        ch.handle_input(t0, &wire(4, 1, Body::FeaturesRequest));
        ch.send(Body::BarrierRequest);
        assert!(sent(&mut ch).is_empty() && events(&mut ch).is_empty());
    }
}

#[test]
fn peer_rejecting_our_hello_closes() {
    let t0 = Instant::now();
    let mut ch = Channel::new(t0, cfg());
    let err = crate::ofp::Error { type_: 0, code: 0, data: b"no".to_vec() };
    ch.handle_input(t0, &wire(4, 1, Body::Error(err)));
    assert_eq!(events(&mut ch), [ChannelEvent::Closed { reason: CloseReason::PeerHelloFailed }]);
}

#[test]
fn openflow10_peer() {
    let t0 = Instant::now();
    let mut ch = ready(t0, &hello_plain(1));
    assert_eq!(ch.version(), Some(1));
    ch.handle_input(t0, &wire(1, 7, Body::FeaturesRequest));
    let ev = events(&mut ch);
    assert_eq!(
        ev,
        [ChannelEvent::Request {
            xid: Xid(7),
            msg: Message { version: 1, xid: Xid(7), body: Body::FeaturesRequest }
        }]
    );
    ch.send_reply(Xid(7), Body::V10(v10::Body::FeaturesReply(v10::FeaturesReply::default())));
    ch.handle_input(t0, &wire(1, 8, Body::EchoRequest(vec![1, 2, 3])));
    let out = sent(&mut ch);
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].version, out[0].xid), (1, Xid(7)));
    assert_eq!(out[1], Message { version: 1, xid: Xid(8), body: Body::EchoReply(vec![1, 2, 3]) });
    // 1.0 numbering of errors.
    ch.send_error(Xid(9), ErrorCode::OFPFMFC_OVERLAP, &[0xaa; 100]);
    let out = sent(&mut ch);
    let (t, c, data) = error_of(&out[0]);
    assert_eq!((out[0].version, t, c, data.len()), (1, 3, 1, 64));
    // A vendor (Nicira) message is refused inside the channel.
    ch.handle_input(t0, &wire(1, 10, Body::V10(v10::Body::Vendor { vendor: 0x2320, data: vec![0; 8] })));
    assert!(events(&mut ch).is_empty());
    let out = sent(&mut ch);
    let (t, c, _) = error_of(&out[0]);
    assert_eq!((out[0].xid, t, c), (Xid(10), 1, 3)); // OFPBRC_BAD_VENDOR in 1.0
}

#[test]
fn echo_is_answered_inside_and_not_surfaced() {
    let t0 = Instant::now();
    let mut ch = ready(t0, &hello_bitmap(4, &[4]));
    ch.handle_input(t0, &wire(4, 0x55, Body::EchoRequest(b"ping".to_vec())));
    assert!(events(&mut ch).is_empty());
    assert_eq!(
        sent(&mut ch),
        [Message { version: 4, xid: Xid(0x55), body: Body::EchoReply(b"ping".to_vec()) }]
    );
    // An echo reply is consumed silently too.
    ch.handle_input(t0, &wire(4, 0x56, Body::EchoReply(Vec::new())));
    assert!(events(&mut ch).is_empty() && sent(&mut ch).is_empty());
}

#[test]
fn inactivity_probe_then_timeout() {
    let t0 = Instant::now();
    let mut ch = ready(t0, &hello_plain(4));
    assert_eq!(ch.poll_timeout(), Some(t0 + 5 * SEC));
    ch.handle_timeout(t0 + 4 * SEC); // early: nothing
    assert!(sent(&mut ch).is_empty());
    ch.handle_timeout(t0 + 5 * SEC);
    let out = sent(&mut ch);
    assert!(matches!(out[..], [Message { version: 4, body: Body::EchoRequest(_), .. }]), "{out:?}");
    ch.handle_timeout(t0 + 5 * SEC); // spurious repeat: no second probe
    assert!(sent(&mut ch).is_empty());
    assert_eq!(ch.poll_timeout(), Some(t0 + 10 * SEC));
    ch.handle_timeout(t0 + 10 * SEC);
    assert_eq!(events(&mut ch), [ChannelEvent::Closed { reason: CloseReason::ProbeTimeout }]);
    assert_eq!(ch.poll_timeout(), None);
}

#[test]
fn any_received_byte_resets_the_probe() {
    let t0 = Instant::now();
    let mut ch = ready(t0, &hello_plain(4));
    ch.handle_timeout(t0 + 5 * SEC);
    sent(&mut ch);
    // One byte of the next message, not a whole message, at 7 s.
    let barrier = wire(4, 3, Body::BarrierRequest);
    ch.handle_input(t0 + 7 * SEC, &barrier[..1]);
    ch.handle_timeout(t0 + 10 * SEC);
    assert!(!ch.is_closed());
    assert_eq!(ch.poll_timeout(), Some(t0 + 12 * SEC));
    ch.handle_input(t0 + 8 * SEC, &barrier[1..]);
    assert!(matches!(events(&mut ch)[..], [ChannelEvent::Request { xid: Xid(3), .. }]));
}

#[test]
fn silent_peer_before_hello_times_out() {
    let t0 = Instant::now();
    let mut ch = Channel::new(t0, cfg());
    assert_eq!(ch.poll_timeout(), Some(t0 + 10 * SEC));
    ch.handle_timeout(t0 + 9 * SEC);
    assert!(!ch.is_closed());
    ch.handle_timeout(t0 + 10 * SEC);
    assert_eq!(events(&mut ch).pop(), Some(ChannelEvent::Closed { reason: CloseReason::ProbeTimeout }));
    // Probing off: no timers at all. An absurdly long interval: never, and no overflow.
    for probe_interval in [Duration::ZERO, Duration::MAX] {
        let mut ch = Channel::new(t0, ChannelConfig { probe_interval, ..cfg() });
        assert_eq!(ch.poll_timeout(), None);
        ch.handle_input(t0, &hello_plain(4));
        ch.handle_timeout(t0 + 1000 * SEC);
        assert_eq!((ch.poll_timeout(), ch.is_closed()), (None, false));
    }
}

#[test]
fn requests_before_hello_are_held_until_ready() {
    let t0 = Instant::now();
    let mut ch = Channel::new(t0, cfg());
    sent(&mut ch);
    ch.handle_input(t0, &wire(4, 1, Body::FeaturesRequest));
    ch.handle_input(t0, &wire(4, 2, Body::EchoRequest(vec![])));
    let early = ch.send(Body::BarrierRequest);
    assert!(events(&mut ch).is_empty() && sent(&mut ch).is_empty());
    ch.handle_input(t0, &hello_plain(4));
    let ev = events(&mut ch);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0], ChannelEvent::Ready { version: 4 });
    assert!(
        matches!(&ev[1], ChannelEvent::Request { xid: Xid(1), msg } if msg.body == Body::FeaturesRequest)
    );
    let out = sent(&mut ch);
    assert_eq!(out[0], Message { version: 4, xid: early, body: Body::BarrierRequest });
    assert_eq!(out[1], Message { version: 4, xid: Xid(2), body: Body::EchoReply(vec![]) });
}

/// A controller's whole conversation, fed in one go or cut anywhere, gives the same result.
#[test]
fn input_split_at_every_offset() {
    let t0 = Instant::now();
    let mut script = hello_bitmap(4, &[1, 4]);
    script.extend(wire(4, 1, Body::FeaturesRequest));
    script.extend(wire(4, 2, Body::EchoRequest(vec![7; 9])));
    script.extend(wire(4, 3, Body::SetConfig(SwitchConfig { flags: 0, miss_send_len: 128 })));
    script.extend(wire(
        4,
        4,
        Body::Experimenter(Experimenter { experimenter: 0x2320, exp_type: 1, data: vec![] }),
    ));
    script.extend(wire(4, 5, Body::BarrierRequest));
    let run = |cuts: &[usize]| {
        let mut ch = Channel::new(t0, cfg());
        let mut last = 0;
        for &c in cuts.iter().chain(std::iter::once(&script.len())) {
            ch.handle_input(t0, &script[last..c]);
            last = c;
        }
        (sent(&mut ch), events(&mut ch))
    };
    let whole = run(&[]);
    assert_eq!(whole.1.len(), 4, "{:?}", whole.1); // Ready + 3 requests
    assert_eq!(whole.0.len(), 3); // hello, echo reply, bad-experimenter error
    for k in 1..script.len() {
        assert_eq!(run(&[k]), whole, "cut at {k}");
    }
    let bytewise: Vec<usize> = (1..script.len()).collect();
    assert_eq!(run(&bytewise), whole);
}

#[test]
fn undecodable_messages_get_errors_and_the_channel_stays_up() {
    let t0 = Instant::now();
    let mut ch = ready(t0, &hello_plain(4));
    // Unknown type.
    ch.handle_input(t0, &[4, 0xee, 0, 8, 0, 0, 0, 9]);
    let out = sent(&mut ch);
    assert_eq!((out[0].xid, error_of(&out[0]).0, error_of(&out[0]).1), (Xid(9), 1, 1));
    assert_eq!(error_of(&out[0]).2, [4, 0xee, 0, 8, 0, 0, 0, 9]);
    // A long flow-mod with a bad OXM: the error echoes its first 64 bytes.
    let mut fm = wire(4, 10, Body::FlowMod(crate::ofp::FlowMod::default()));
    fm.extend([0; 64]);
    let len = fm.len() as u16;
    fm[2..4].copy_from_slice(&len.to_be_bytes());
    fm[48..56].copy_from_slice(&[0, 1, 0, 0x0c, 0x80, 0, 0x0a, 0x08]); // match length 12, OXM overruns
    ch.handle_input(t0, &fm);
    let out = sent(&mut ch);
    let (t, _, data) = error_of(&out[0]);
    assert_eq!((t, data), (4, &fm[..64]));
    // Bad version mid-stream.
    ch.handle_input(t0, &wire(1, 11, Body::FeaturesRequest));
    let out = sent(&mut ch);
    assert_eq!((out[0].version, error_of(&out[0]).0, error_of(&out[0]).1), (4, 1, 0));
    // Still up: a good request surfaces.
    ch.handle_input(t0, &wire(4, 12, Body::BarrierRequest));
    assert!(matches!(events(&mut ch)[..], [ChannelEvent::Request { xid: Xid(12), .. }]));
    // Unknown experimenter: refused inside.
    ch.handle_input(
        t0,
        &wire(4, 13, Body::Experimenter(Experimenter { experimenter: 1, exp_type: 2, data: vec![] })),
    );
    let out = sent(&mut ch);
    let (t, c, _) = error_of(&out[0]);
    assert_eq!((t, c), ErrorCode::OFPBRC_BAD_EXPERIMENTER.v13());
    assert!(events(&mut ch).is_empty());
    // Experimenter multipart requests too.
    let exp = Experimenter { experimenter: 0x2320, exp_type: 0, data: vec![] };
    let body = MultipartRequestBody::Experimenter(exp);
    ch.handle_input(t0, &wire(4, 14, Body::MultipartRequest(MultipartRequest { flags: 0, body })));
    let out = sent(&mut ch);
    assert_eq!((out[0].xid, error_of(&out[0]).1), (Xid(14), 3));
    assert!(events(&mut ch).is_empty());
}

#[test]
fn framing_loss_closes() {
    let t0 = Instant::now();
    let mut ch = ready(t0, &hello_plain(4));
    ch.handle_input(t0, &[4, 20, 0, 4, 0, 0, 0, 1, 9, 9, 9]);
    assert_eq!(events(&mut ch), [ChannelEvent::Closed { reason: CloseReason::Framing }]);
    // Also before HELLO.
    let mut ch = Channel::new(t0, cfg());
    ch.handle_input(t0, &[0; 8]);
    assert_eq!(events(&mut ch), [ChannelEvent::Closed { reason: CloseReason::Framing }]);
}

#[test]
fn garbage_never_panics_and_output_always_decodes() {
    let t0 = Instant::now();
    let mut seed = 0x1234_5678_u64;
    for round in 0..200 {
        let mut ch = Channel::new(t0, ChannelConfig { max_input: 4096, ..cfg() });
        if round % 2 == 0 {
            ch.handle_input(t0, &hello_plain(4));
        }
        for step in 0..20u32 {
            let mut chunk = Vec::new();
            for _ in 0..(seed % 40) {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                chunk.push((seed >> 33) as u8);
            }
            // Make some chunks look like headers of a plausible version and length.
            if chunk.len() >= 4 && step % 3 == 0 {
                chunk[0] = 4;
                chunk[2] = 0;
                chunk[3] = chunk[3].max(8) % 48;
            }
            ch.handle_input(t0 + step * SEC, &chunk);
            ch.handle_timeout(t0 + step * 3 * SEC);
            sent(&mut ch);
            events(&mut ch);
        }
    }
}

#[test]
fn too_much_unread_input_closes() {
    let t0 = Instant::now();
    let mut ch = Channel::new(t0, ChannelConfig { max_input: 100, ..cfg() });
    for xid in 0..20 {
        ch.handle_input(t0, &wire(4, xid, Body::BarrierRequest)); // held: no HELLO yet
    }
    assert_eq!(events(&mut ch), [ChannelEvent::Closed { reason: CloseReason::InputOverflow }]);
    // Polling events as they come keeps the channel within bounds.
    let mut ch = ready(t0, &hello_plain(4));
    for xid in 0..1000 {
        ch.handle_input(t0, &wire(4, xid, Body::BarrierRequest));
        assert_eq!(events(&mut ch).len(), 1);
    }
    assert!(!ch.is_closed());
}

#[test]
fn replies_use_the_negotiated_version_and_fresh_xids() {
    let t0 = Instant::now();
    let mut ch = ready(t0, &hello_plain(4));
    let a = ch.send(Body::BarrierRequest);
    let b = ch.send(Body::BarrierRequest);
    assert_ne!(a, b);
    ch.send_message(&Message { version: 4, xid: Xid(77), body: Body::BarrierReply });
    let out = sent(&mut ch);
    assert_eq!(out.iter().map(|m| (m.version, m.xid)).collect::<Vec<_>>(), [(4, a), (4, b), (4, Xid(77))]);
    // A body with no 1.3 encoding is dropped and counted, not sent half-written.
    ch.send(Body::V10(v10::Body::PortMod(v10::PortMod::default())));
    assert!(sent(&mut ch).is_empty());
    assert_eq!(ch.encode_failures(), 1);
    // Repeated HELLO: ignored.
    ch.handle_input(t0, &hello_plain(4));
    assert!(sent(&mut ch).is_empty() && events(&mut ch).is_empty());
}
