//! Tollgate: a self-hosted dashboard for personal access tokens and the JSON
//! API they unlock. This file only lists the modules.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod download;
pub mod mail;
pub mod metrics;
pub mod request;
pub mod service;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod web;
