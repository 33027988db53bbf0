//! The StateSync service end to end, over a real socket and in-process: the same suite on both
//! transports.

mod harness;
mod suite;
