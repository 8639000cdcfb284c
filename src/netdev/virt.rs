//! Ports with no device behind them: patch ports (one bridge's end of a link to another
//! bridge) and GRE tunnel ports. They have no queues, so no poll thread receives from them;
//! the datapath itself gives them meaning (a frame output to a patch port is looked up again
//! with the peer as its ingress port, one output to a tunnel port is encapsulated and sent on
//! an underlay port). Their link is always up; their counters are the datapath's, so the
//! port's own stay zero. No `unsafe`.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use super::{Error, LinkState, Port, PortStats, Queue, Umem};

/// A port without a device: `kind` is `"patch"` or `"gre"` (shown by `dump-ports`).
pub struct VirtualPort {
    name: String,
    kind: &'static str,
    mac: [u8; 6],
    admin_down: AtomicBool,
}

impl VirtualPort {
    /// A port named `name` of kind `kind`, with a locally administered address made from the
    /// name (stable across restarts, as OVS derives one for internal ports).
    pub fn new(name: &str, kind: &'static str) -> VirtualPort {
        // FNV-1a over the name: different names give different addresses in practice.
        let h = name
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let b = h.to_be_bytes();
        // Locally administered (bit 1), unicast (bit 0 clear).
        let mac = [(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]];
        VirtualPort { name: name.to_string(), kind, mac, admin_down: AtomicBool::new(false) }
    }

    /// A patch port.
    pub fn patch(name: &str) -> VirtualPort {
        VirtualPort::new(name, "patch")
    }

    /// A GRE tunnel port.
    pub fn gre(name: &str) -> VirtualPort {
        VirtualPort::new(name, "gre")
    }
}

impl Port for VirtualPort {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn n_queues(&self) -> u32 {
        0
    }
    fn open_queue(&self, _qid: u32, _umem: &mut Umem) -> Result<Box<dyn Queue>, Error> {
        Err(Error::Unsupported("a patch or tunnel port has no queues"))
    }
    fn mac(&self) -> [u8; 6] {
        self.mac
    }
    fn stats(&self) -> PortStats {
        PortStats::default()
    }
    fn chunks_per_queue(&self) -> u32 {
        0
    }
    fn link(&self) -> LinkState {
        // The link is always up; the admin flag is remembered for port-mod's sake.
        LinkState { admin_up: !self.admin_down.load(Relaxed), ..LinkState::default() }
    }
    fn set_admin_up(&self, up: bool) -> Result<(), Error> {
        self.admin_down.store(!up, Relaxed);
        Ok(())
    }
    fn describe(&self) -> String {
        format!("{} (no device)", self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_ports_have_no_queues_and_stable_local_addresses() {
        let p = VirtualPort::patch("patch-tun");
        let g = VirtualPort::gre("gre-h2");
        assert_eq!((p.kind(), g.kind(), p.name()), ("patch", "gre", "patch-tun"));
        assert_eq!((p.n_queues(), g.n_queues()), (0, 0));
        let mut umem = Umem::new(1).unwrap();
        assert!(matches!(p.open_queue(0, &mut umem), Err(Error::Unsupported(_))));
        for m in [p.mac(), g.mac()] {
            assert_eq!(m[0] & 0x03, 0x02, "locally administered unicast: {m:02x?}");
        }
        assert_ne!(p.mac(), g.mac());
        assert_eq!(p.mac(), VirtualPort::patch("patch-tun").mac());
        assert_eq!(p.stats(), PortStats::default());
        assert!(p.is_live());
        p.set_admin_up(false).unwrap();
        let l = p.link();
        assert!(!l.admin_up && l.live);
    }
}
