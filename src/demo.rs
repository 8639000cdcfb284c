//! `xdpswitch demo`: the self-contained demonstration. Two hosts (network namespaces) joined
//! by the switch over veth pairs; ping proves the path, then the XDP generator in one host
//! sends UDP through the switch to the XDP sink in the other, and the demo prints the rate.
//! Everything it creates is removed at the end, also on error or Ctrl-C.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::datapath::dpif::DatapathConfig;
use crate::netns::{is_root, Host};
use crate::run::{wait_for_ctl, RunOptions, Switch};

/// Demo settings.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub duration: u64,
    pub size: u32,
    pub cores: usize,
}

/// The flows of the demo: everything from port 1 to port 2 and back.
pub const DEMO_FLOWS: &str =
    "priority=10,in_port=1,actions=output:2\npriority=10,in_port=2,actions=output:1\n";

/// Runs the demo and prints what it measured.
pub fn run(opts: &DemoOptions) -> anyhow::Result<()> {
    if !is_root() {
        bail!("the demo creates network namespaces and attaches XDP programs: run it as root (sudo)");
    }
    if !(60..=1518).contains(&opts.size) {
        bail!("--size {}: must be between 60 and 1518", opts.size);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let id = std::process::id();
    println!("demo: building hosts xsdemo-{id}-a (198.18.0.1) and xsdemo-{id}-b (198.18.0.2)");
    let a = Host::create(&format!("xsdemo-{id}-a"), &format!("xsd{id}a"), "198.18.0.1/24", 1)?;
    let b = Host::create(&format!("xsdemo-{id}-b"), &format!("xsd{id}b"), "198.18.0.2/24", 1)?;
    let ctl_path = std::env::temp_dir().join(format!("xsdemo-{id}.ctl"));
    let run_opts = RunOptions {
        ports: vec![a.sw_if.clone(), b.sw_if.clone()],
        flow_text: Some(DEMO_FLOWS.to_string()),
        ctl_path: ctl_path.clone(),
        datapath: DatapathConfig { n_pmds: opts.cores.max(1), ..DatapathConfig::default() },
        bridge_name: format!("xsd{id}br"),
        ..RunOptions::default()
    };
    let switch = Switch::build(&run_opts)?;
    let switch_stop = stop.clone();
    let switch_thread = std::thread::spawn(move || switch.serve(&switch_stop));
    let result = traffic(opts, &a, &b, &ctl_path, &stop);
    stop.store(true, Relaxed);
    let _ = switch_thread.join();
    drop((a, b));
    println!("demo: hosts removed, XDP programs detached");
    result
}

fn traffic(
    opts: &DemoOptions,
    a: &Host,
    b: &Host,
    ctl_path: &std::path::Path,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    if !wait_for_ctl(ctl_path, Duration::from_secs(5)) {
        bail!("the switch did not come up");
    }
    println!(
        "demo: xdpswitch switching {} (port 1) <-> {} (port 2); flows:\n  {}",
        a.sw_if,
        b.sw_if,
        DEMO_FLOWS.trim_end().replace('\n', "\n  ")
    );
    let have_ping = std::process::Command::new("ping")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if have_ping {
        let ping = a
            .exec(&["ping", "-c", "3", "-i", "0.2", "-W", "2", b.addr()])
            .context("ping through the switch")?;
        if let Some(line) = ping.lines().find(|l| l.contains("packets transmitted")) {
            println!("demo: ping 198.18.0.1 -> 198.18.0.2: {line}");
        }
    } else {
        println!("demo: ping is not installed (apt-get install iputils-ping): skipping the ping check");
    }
    if stop.load(Relaxed) {
        bail!("interrupted");
    }
    let exe = std::env::current_exe().context("finding the xdpswitch binary")?;
    let exe = exe.to_string_lossy().to_string();
    let secs = opts.duration.max(1);
    let sink = b
        .command(&exe)
        .args(["pktgen", "sink", "--dev", "eth0", "--duration", &(secs + 2).to_string(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the sink")?;
    std::thread::sleep(Duration::from_millis(700));
    // Counters from here on cover only the traffic.
    let _ = crate::ctl::call(ctl_path, &["pmd-stats-clear".to_string()], false);
    println!(
        "demo: sending {}-byte UDP frames for {secs} s (XDP generator in host a, XDP sink in host b)",
        opts.size
    );
    let send = a
        .command(&exe)
        .args(["pktgen", "send", "--dev", "eth0", "--size", &opts.size.to_string(), "--flows", "1"])
        .args(["--duration", &secs.to_string(), "--json"])
        .args(["--src-ip", a.addr(), "--dst-ip", b.addr(), "--src-mac", &a.mac, "--dst-mac", &b.mac])
        .stderr(Stdio::null())
        .output()
        .context("running the generator")?;
    let sink = sink.wait_with_output().context("waiting for the sink")?;
    if !send.status.success() {
        bail!("the generator failed: {}", String::from_utf8_lossy(&send.stdout));
    }
    let sent: serde_json::Value =
        serde_json::from_slice(&send.stdout).context("reading the generator's report")?;
    let got: serde_json::Value = serde_json::from_slice(&sink.stdout).context("reading the sink's report")?;
    let sent_pkts = sent["packets"].as_u64().unwrap_or(0);
    let sent_pps = sent["pps"].as_f64().unwrap_or(0.0);
    let got_pkts = got["packets"].as_u64().unwrap_or(0);
    let secs_f = sent["seconds"].as_f64().unwrap_or(secs as f64).max(0.001);
    let fwd_pps = got_pkts as f64 / secs_f;
    if let Ok(r) = crate::ctl::call(ctl_path, &["pmd-stats".to_string()], false) {
        for l in r.body.lines() {
            println!("demo: {l}");
        }
    }
    println!(
        "demo: offered {:.2} Mpps; xdpswitch forwarded {got_pkts} of {sent_pkts} packets in {secs_f:.1} s: {:.2} Mpps, {:.2} Gbit/s ({} B frames, {} core(s))",
        sent_pps / 1e6,
        fwd_pps / 1e6,
        fwd_pps * opts.size as f64 * 8.0 / 1e9,
        opts.size,
        opts.cores
    );
    Ok(())
}
