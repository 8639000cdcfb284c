//! Real client bytes: what ovs-ofctl sends, decoded and re-encoded byte for byte.

use super::super::flow::OFPFC_DELETE;
use super::super::Body;
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
