//! ctl — the operator's control socket (in progress)
