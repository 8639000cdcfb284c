//! AF_XDP ports (in progress)
