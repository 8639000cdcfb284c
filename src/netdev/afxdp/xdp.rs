//! The XDP program (`bpf/xsk_redirect.o`, embedded) that redirects queue N's frames to the
//! socket in `xsks_map[N]` and passes everything else to the kernel.
//!
//! Attached with a bpf_link (aya 0.14), so the program goes away when the link fd closes:
//! when [`XdpProgram`] is dropped, and also if the process dies. (aya falls back to a netlink
//! attachment only on kernels without XDP links; that one is detached on drop too.)

use aya::maps::{MapData, XskMap};
use aya::programs::xdp::XdpLinkId;
use aya::programs::{Xdp, XdpMode as AyaMode};
use aya::Ebpf;

use super::XdpMode;
use crate::netdev::Error;

static PROGRAM: &[u8] = aya::include_bytes_aligned!("../../../bpf/xsk_redirect.o");

/// Which mode the program ended up attached in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    Native,
    Generic,
}

impl Attached {
    /// `native` or `generic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Attached::Native => "native",
            Attached::Generic => "generic",
        }
    }
}

/// Loads the XDP program `name` of an object into the kernel (through the verifier), ready to
/// attach or run; the error is the reason, for the caller to wrap.
pub(crate) fn load_xdp<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp, String> {
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("no {name} program in object"))?
        .try_into()
        .map_err(|e| format!("{name}: {e}"))?;
    prog.load().map_err(|e| format!("verifier: {e}"))?;
    Ok(prog)
}

/// Attaches a loaded XDP program to `ifindex` in the modes `mode` allows, native first; says
/// which one took (and warns once about generic mode's limits).
pub(crate) fn attach_with_fallback(
    prog: &mut Xdp,
    name: &str,
    ifindex: u32,
    mode: XdpMode,
) -> Result<(Attached, XdpLinkId), Error> {
    let tries: &[(AyaMode, Attached)] = match mode {
        XdpMode::Auto => &[(AyaMode::Driver, Attached::Native), (AyaMode::Skb, Attached::Generic)],
        XdpMode::Native => &[(AyaMode::Driver, Attached::Native)],
        XdpMode::Generic => &[(AyaMode::Skb, Attached::Generic)],
    };
    let mut last = String::new();
    for &(aya_mode, attached) in tries {
        match prog.attach_to_if_index(ifindex, aya_mode) {
            Ok(link) => {
                tracing::info!(port = name, mode = attached.as_str(), "XDP program attached");
                if attached == Attached::Generic {
                    tracing::warn!(
                        port = name,
                        "generic XDP: GSO/TSO super-frames from senders do not fit a {} byte chunk \
                         and are dropped; turn off gso/tso on senders",
                        crate::netdev::CHUNK_SIZE
                    );
                }
                return Ok((attached, link));
            }
            Err(e) => {
                tracing::debug!(port = name, mode = attached.as_str(), error = %e, "XDP attach failed");
                last = format!("attach in {} mode: {e}", attached.as_str());
            }
        }
    }
    Err(Error::Xdp { name: name.to_string(), reason: last })
}

/// The loaded, attached program and its XSKMAP. Dropping it detaches the program.
pub struct XdpProgram {
    // Declared first: dropped (unset entries are irrelevant then) before the program.
    map: XskMap<MapData>,
    ebpf: Ebpf,
    attached: Attached,
}

impl XdpProgram {
    /// Loads the program and attaches it to `ifindex` (`name` is for errors).
    pub fn attach(name: &str, ifindex: u32, mode: XdpMode) -> Result<XdpProgram, Error> {
        let err = |reason: String| Error::Xdp { name: name.to_string(), reason };
        let mut ebpf = Ebpf::load(PROGRAM).map_err(|e| err(format!("load object: {e}")))?;
        let map = ebpf.take_map("xsks_map").ok_or_else(|| err("no xsks_map in object".into()))?;
        let map = XskMap::try_from(map).map_err(|e| err(format!("xsks_map: {e}")))?;
        let prog = load_xdp(&mut ebpf, "xsk_redirect").map_err(err)?;
        let (attached, _link) = attach_with_fallback(prog, name, ifindex, mode)?;
        Ok(XdpProgram { map, ebpf, attached })
    }

    /// The mode the program runs in.
    pub fn attached(&self) -> Attached {
        self.attached
    }

    /// Number of queues the map can steer.
    pub fn max_queues(&self) -> u32 {
        self.map.len()
    }

    /// Steers queue `qid` to socket `fd` (after the socket is bound).
    pub fn set_socket(&mut self, qid: u32, fd: std::os::fd::RawFd) -> Result<(), aya::maps::MapError> {
        self.map.set(qid, fd, 0)
    }
}

impl std::fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpProgram").field("attached", &self.attached).field("ebpf", &"..").finish()
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        // The Ebpf drops its programs and their links right after this: that detaches.
        let _ = &self.ebpf;
        tracing::debug!(mode = self.attached.as_str(), "XDP program detaching");
    }
}
