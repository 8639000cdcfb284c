//! The datapath interface (in progress)
