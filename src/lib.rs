//! tokend: a gRPC service that issues, revokes, validates and lists Kubernetes ServiceAccount
//! tokens and renders kubeconfigs for them, keeping every fact in the Kubernetes API.
//!
//! The arrows point one way: [`grpc`] (proto types, tonic) → [`service`] (validation, policy, the
//! issue/revoke logic) → [`cluster`] (kube-rs calls). Nothing below `grpc` knows about tonic.

pub mod audit;
pub mod authn;
pub mod cluster;
pub mod config;
#[cfg(feature = "dev")]
pub mod dev;
pub mod grpc;
pub mod health;
pub mod kubeconfig;
pub mod label_selector;
pub mod listener;
pub mod metrics;
pub mod names;
pub mod peer_limit;
pub mod policy;
pub mod rpc_layer;
pub mod server;
pub mod service;
pub mod sweeper;
pub mod telemetry;
pub mod tls;
pub mod token_id;
pub mod ttl_cache;
pub mod vocabulary;
