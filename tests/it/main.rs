//! Integration tests: the real `berth` binary against the real container engine.
//! One test binary (faster to link); each module is a command or a promise from PRODUCT.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod fixtures;
mod support;

mod clean;
mod code;
mod doctor;
mod engine_accepts_plan;
mod engine_errors;
mod exec;
mod export;
mod host_configure;
mod images;
mod jobs;
mod lifecycle;
mod malformed;
mod ownership;
mod pack;
mod podman;
mod push;
mod ship;
mod slurm;
mod terminal;
mod top;
