//! Cross-crate integration tests of the root package (one binary, modules by concern).

mod bytes_sync;
mod fuzz_corpus;
mod links;
mod sync;
mod vm_example;
