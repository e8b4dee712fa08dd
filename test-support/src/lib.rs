//! The one test harness of tokend, shared by the black-box tests, the emulator's contract tests
//! and the benchmark: which Kubernetes API to run against ([`backend`]: the emulator, a real
//! control plane from [`control_plane`], or any cluster), tokend under test ([`tokend`]), a
//! fault-injecting proxy usable on both backends ([`fault_proxy`]), cleanup that works on a
//! real cluster ([`cleanup`]), polling for eventual consistency ([`polling`]) and for what was
//! just written to be in force ([`propagation`]), unique names,
//! skips that are counted per backend ([`skips`]), and background load for a real API server
//! ([`api_load`]).

pub mod api_load;
pub mod backend;
pub mod cleanup;
pub mod contract;
pub mod control_plane;
pub mod declarative;
pub mod fault_proxy;
pub mod least_privilege;
pub mod names;
mod pki;
pub mod polling;
pub mod propagation;
pub mod records;
pub mod skips;
pub mod tokend;

use std::path::PathBuf;

pub use backend::{Backend, Cluster, emulator_options};
pub use declarative::{crd_served, start_declarative, start_declarative_as};
pub use fault_proxy::{FailRule, FaultProxy, Faults};
pub use names::unique_name;
pub use polling::{EVENTUALLY, eventually, eventually_ok, eventually_some, eventually_within};
pub use records::{record_key, record_of, write_sealed_record};
pub use skips::{SkipKind, skip, skip_unless_emulator};
pub use tokend::{
    TestEnv, assert_code, client_with_token, grant, issue, issue_rule, reason_of, start, start_as,
    start_with, start_with_api_down, start_with_node_credentials, violations_of,
    with_node_credentials,
};

/// A free loopback port for a server the test starts later by address: drawn below the
/// ephemeral range (32768–60999), so neither an outgoing connection nor another `bind(:0)`
/// takes it between this check and the server's own bind (a `bind(:0)` port could be, and was,
/// taken in between on a busy machine: "Address already in use").
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = 20000 + rand::random::<u16>() % 12000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between 20000 and 32000")
}

/// The first file named `program` on PATH, like `command -v`.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
