//! Upcalls (in progress)
