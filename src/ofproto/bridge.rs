//! The bridge: the control thread that owns ofproto state and the datapath (in progress)
