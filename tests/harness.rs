//! A short run of the benchmark harness (`benches/p2p.py --quick`): every DUT this machine
//! can run forwards real traffic from the generator namespace to the sink namespace, and the
//! report has a row with a rate for each. Rates are not judged here (no timing assertions);
//! `docs/benchmarks.md` records them from full runs.

mod support;

use std::process::Command;
use support::*;

#[test]
fn quick_harness_run_reports_every_dut() {
    if skip_unless_root() {
        return;
    }
    let out = std::env::temp_dir().join(format!("xs-p2p-{}", tag('h')));
    let mut duts = vec!["xdpswitch", "bare", "linux-bridge", "xdp-redirect"];
    let have_ovs =
        Command::new("sh").args(["-c", "command -v ovs-vswitchd"]).output().unwrap().status.success();
    if have_ovs {
        duts.extend(["ovs-afxdp", "ovs-system"]);
    }
    // Another harness run on the machine (a benchmark) has namespaces of its own: only new
    // ones count as left behind.
    let harness_ns = || -> Vec<String> {
        let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
        String::from_utf8_lossy(&ns.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with("xb-"))
            .map(str::to_string)
            .collect()
    };
    let before = harness_ns();
    let root = env!("CARGO_MANIFEST_DIR");
    let st = Command::new("python3")
        .arg(format!("{root}/benches/p2p.py"))
        .args(["--quick", "--duts", &duts.join(","), "--out"])
        .arg(&out)
        .env("XDPSWITCH_BIN", bin())
        .status()
        .expect("python3");
    assert!(st.success());
    let md = std::fs::read_to_string(out.join("results.md")).expect("results.md");
    for d in &duts {
        let row = md
            .lines()
            .find(|l| l.starts_with("| 64B/1fl |") && l.split('|').nth(2).map(str::trim) == Some(d))
            .unwrap_or_else(|| panic!("no row for {d}:\n{md}"));
        let mpps: f64 = row.split('|').nth(3).unwrap().trim().parse().unwrap_or_else(|_| panic!("{row}"));
        assert!(mpps > 0.0, "{d} forwarded nothing:\n{md}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert!(json["results"]["64B/1fl"]["xdpswitch"][0]["received"].as_u64().unwrap() > 0);
    let _ = std::fs::remove_dir_all(&out);
    // The harness leaves nothing behind.
    let left: Vec<String> = harness_ns().into_iter().filter(|n| !before.contains(n)).collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}
