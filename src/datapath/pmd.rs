//! Poll threads (in progress)
