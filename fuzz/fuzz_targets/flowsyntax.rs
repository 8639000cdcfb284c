//! Arbitrary text into the `ovs-ofctl` flow syntax parser (`ofproto::syntax`): never panics;
//! a flow it accepts prints (`dump-flows` style) to a line that parses back to the same flow
//! and prints the same again; a rule selector (del-flows / mod-flows) prints and parses back
//! the same way; `parse_flow_mod` agrees with `parse_flow` for add.
//!
//! Input: UTF-8 text, one flow line (other bytes are skipped).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdpswitch::ofproto::{
    parse_flow, parse_flow_mod, parse_flow_selector, FlowMod, FlowModCommand, PortNames,
};

fn ports() -> PortNames {
    [("eth0", 1), ("eth1", 2), ("p3", 3), ("patch-int", 4), ("gre-0a000002", 5)].into_iter().collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    let ports = ports();
    let flow = parse_flow(line, &ports);
    if let Ok(spec) = &flow {
        let printed = spec.to_string();
        match parse_flow(&printed, &ports) {
            Ok(again) => assert_eq!(&again, spec, "{line:?} printed as {printed:?}"),
            Err(e) => panic!("{line:?} printed as {printed:?}, which does not parse: {e}"),
        }
        assert_eq!(parse_flow(&printed, &ports).map(|s| s.to_string()), Ok(printed.clone()));
    }
    match parse_flow_mod(FlowModCommand::Add, line, &ports) {
        Ok(fm) => assert_eq!(Ok(fm), flow.map(FlowMod::add)),
        Err(e) => assert_eq!(Err(e), flow),
    }
    if let Ok((spec, out_port)) = parse_flow_selector(line, &ports) {
        let printed = format!("out_port={out_port}, {spec}");
        match parse_flow_selector(&printed, &ports) {
            Ok(again) => assert_eq!(again, (spec, out_port), "{line:?} printed as {printed:?}"),
            Err(e) => panic!("{line:?} printed as {printed:?}, which does not parse as a selector: {e}"),
        }
    }
    for command in [
        FlowModCommand::Modify,
        FlowModCommand::ModifyStrict,
        FlowModCommand::Delete,
        FlowModCommand::DeleteStrict,
    ] {
        let _ = parse_flow_mod(command, line, &ports);
    }
});
