//! Real client bytes: what ovs-ofctl sends, decoded and re-encoded byte for byte.

use super::super::flow::OFPFC_DELETE;
use super::super::{v10, Body};
use super::{dec, enc, hex};

/// Messages ovs-ofctl 3.1 (`-O OpenFlow13`) sent to a stand-in switch for add-flow (VLAN,
/// IPv4 prefix, TCP, pop_vlan, set_field, dec_ttl, goto_table; meter, push_vlan,
/// write_actions with group/set_queue, write_metadata; tun_id set_field, controller:128,
/// clear_actions), del-flows, packet-out, dump-flows, dump-aggregate, dump-ports and
/// dump-ports-desc, captured off the socket.
const OVS_OFCTL_CAPTURE: &[&str] = &[
    "04000010000000010001000800000010",
    "04000010000000030001000800000010",
    "04000010000000050001000800000010",
    concat!(
        "040d005200000006fffffffffffffffd001000000000000000000010fffffffb",
        "0000000000000000ffffffffffff000000000001080600010800060400010000",
        "000000010a0000010000000000000a000002",
    ),
    concat!(
        "040e00480000000600000000000000000000000000000000ff03000000008000",
        "ffffffffffffffffffffffff000000000001001280000a02080680002e040a00",
        "0001000000000000",
    ),
    concat!(
        "040e007800000006000000000000000000000000000000000000000000000005",
        "ffffffffffffffffffffffff000000000001001580000a0286dd800014010680",
        "001a02001600000000040028000000000019001080004c080000000000001234",
        "00000010fffffffd00800000000000000005000800000000",
    ),
    concat!(
        "040e00a000000006000000000000000000000000000000000000000000000064",
        "ffffffffffffffffffffffff000000000001002f800000040000000180000a02",
        "080080000c02100a800017080a000000ff000000800014010680001c02005000",
        "0004003800000000001200080000000000190010800006060000000000020000",
        "0018000800000000000000100000000200000000000000000001000801000000",
    ),
    concat!(
        "040e00b800000006000000000000000500000000000000000100000000008000",
        "ffffffffffffffffffffffff000000000001002e80000a0286dd800035202001",
        "0db8000000000000000000000000ffffffff0000000000000000000000000000",
        "0006000800000001000400200000000000110008810000000019001080000c02",
        "1001000000000000000300180000000000160008000000030015000800000002",
        "0002001800000000000000000000001000000000000000ff",
    ),
    "0412001000000002000c000000000000",
    "0412001000000002000d000000000000",
    "0412001000000004000d000000000000",
    "04120018000000020004000000000000ffffffff00000000",
    concat!(
        "04120038000000020001000000000000ff000000ffffffffffffffff00000000",
        "000000000000000000000000000000000001000400000000",
    ),
    concat!(
        "04120038000000020002000000000000ff000000ffffffffffffffff00000000",
        "000000000000000000000000000000000001000400000000",
    ),
    "0414000800000007",
];

#[test]
fn ovs_ofctl_messages_decode_and_reencode_byte_for_byte() {
    let mut flow_mods = 0;
    for h in OVS_OFCTL_CAPTURE {
        let bytes = hex(h);
        let msg = dec(&bytes);
        assert_eq!(enc(&msg), bytes, "{msg:?}");
        assert!(!matches!(msg.body, Body::Other { .. }), "{msg:?}");
        if let Body::FlowMod(fm) = &msg.body {
            flow_mods += 1;
            assert!(!fm.instructions.is_empty() || fm.command == OFPFC_DELETE, "{fm:?}");
        }
    }
    assert_eq!(flow_mods, 4);
}

/// The same with `-O OpenFlow10`: add-flow (VLAN, IPv4 prefix, TCP; strip_vlan, mod_dl_*,
/// mod_nw_*, mod_tp_*, enqueue, normal, controller), del-flows, packet-out, show, and the
/// Nicira vendor message and vendor stats that dump-flows uses (these stay raw).
const OVS_OFCTL_CAPTURE_OF10: &[&str] = &[
    "0100000800000001",
    "0100000800000003",
    "0100000800000005",
    "0104001400000002000023200000000c00000002",
    "0105000800000002",
    "0105000800000004",
    "0107000800000004",
    concat!("010d002800000006ffffffffffff000800000008fffb0000ffffffffffff0000", "0000000108004500",),
    concat!(
        "010e004800000006003820fe0003000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000003000000008000",
        "ffffffffffff0000",
    ),
    concat!(
        "010e0088000000060038184c0001000000000000000000000000000a00000800",
        "000600000a000000000000000000005000000000000000000000000000000064",
        "ffffffffffff0000000300080000000000050010000000000002000000000000",
        "00080008200000000009000800630000000b0010000200000000000000000003",
        "0000000800020000",
    ),
    concat!(
        "010e009000000006003820ef0000000000000000000000000000000000000806",
        "0000000000000000000000000000000000000000000000000000000000008000",
        "ffffffffffff0000000100080005000000020008030000000004001000000000",
        "000100000000000000060008010203040007000805060708000a000800070000",
        "00000008fffa000000000008fffd0040",
    ),
    "0110000c0000000200030000",
    "0110002000000004ffff0000000023200000000000000000ffff0000ff000000",
    "0112000800000003",
    "0112000800000007",
];

#[test]
fn ovs_ofctl_of10_messages_decode_and_reencode_byte_for_byte() {
    let (mut flow_mods, mut packet_outs) = (0, 0);
    for h in OVS_OFCTL_CAPTURE_OF10 {
        let bytes = hex(h);
        let msg = dec(&bytes);
        assert_eq!(enc(&msg), bytes, "{msg:?}");
        match &msg.body {
            Body::V10(v10::Body::FlowMod(_)) => flow_mods += 1,
            Body::V10(v10::Body::PacketOut(p)) => {
                packet_outs += 1;
                assert_eq!(p.actions, [v10::Action::Output { port: 0xfffb, max_len: 0 }]);
            }
            Body::Other { type_, .. } => assert_eq!(*type_, 4, "only the vendor message stays raw"),
            _ => {}
        }
    }
    assert_eq!((flow_mods, packet_outs), (3, 1));
}
