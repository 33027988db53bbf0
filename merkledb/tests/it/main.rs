//! Integration tests of arbor-merkledb (one binary, modules by concern).

mod backends;
mod corruption;
mod crash;
mod failures;
mod layout;
mod model;
mod proofs;
mod proposals;
mod vectors;
