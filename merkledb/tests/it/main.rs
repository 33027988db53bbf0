//! Integration tests of arbor-merkledb (one binary, modules by concern).

mod backends;
mod corruption;
mod crash;
mod model;
mod proposals;
mod vectors;
