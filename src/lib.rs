//! tokend: a gRPC service that issues, revokes, validates and lists Kubernetes ServiceAccount
//! tokens and renders kubeconfigs for them, keeping every fact in the Kubernetes API.
//!
//! The arrows point one way: [`server`] (wiring) → [`grpc`] (proto types, tonic) →
//! [`service`] (checks, policy, one file per use case) → [`cluster`] (kube-rs calls). Nothing
//! below `grpc` knows about tonic; the leaf modules below import none of the layers.
//!
//! | module | holds |
//! | --- | --- |
//! | [`server`] | the wiring: listener and TLS, caller authentication, request layers, health, metrics endpoint, the sweeper task |
//! | [`grpc`] | TokenService, BootstrapTokenService and ClientCertificateService in tonic: proto ↔ service types, errors → gRPC status once |
//! | [`service`] | the use cases (issue, revoke, validate, get, list, kubeconfig, bootstrap tokens, client certificates), records, checks, policy, audit |
//! | [`cluster`] | every Kubernetes call tokend makes (kube-rs), the Lease's reads and writes included |
//! | [`controller`] | the ServiceAccountToken custom resource, its controller and admission webhook |
//! | [`sweeper`] | the leader-elected job deleting expired and abandoned records |
//! | [`leader_election`] | who runs the sweeper and the controller: a Lease judged by observed time, as client-go does |
//! | [`config`] | command-line flags and environment |
//! | [`metrics`], [`telemetry`] | Prometheus metrics; tracing setup |
//! | [`build_info`], [`caller`], [`token_id`], [`names`], [`kubeconfig`], [`credential_kubeconfig`], [`vocabulary`], [`cache`] | leaves: what the binary is (from build.rs), the proven caller, token ids, name rules, kubeconfig rendering (token kubeconfigs; bootstrap and client-certificate kubeconfigs), labels and limits, the cache shape |
//! | `dev` | `tokend dev` / `tokend emulator` (feature `dev`) |

pub mod build_info;
pub mod cache;
pub mod caller;
pub mod cluster;
pub mod config;
pub mod controller;
pub mod credential_kubeconfig;
#[cfg(feature = "dev")]
pub mod dev;
pub mod grpc;
pub mod kubeconfig;
pub mod leader_election;
pub mod metrics;
pub mod names;
pub mod server;
pub mod service;
pub mod sweeper;
pub mod telemetry;
pub mod token_id;
pub mod vocabulary;
