//! The one configuration file (`gatewire.toml`): every role's section ([`schema`]), loading it
//! with the environment and `--set` overrides ([`load`]), and checking it ([`checks`]). Errors
//! name the key and the file.

mod checks;
mod load;
mod schema;

use std::path::PathBuf;

use load::url_password_masked;
pub use load::{ConfigError, load};
pub use schema::*;

/// Where run directories live when `[run] dir` is unset: `$XDG_RUNTIME_DIR/gatewire`, else
/// `/run/gatewire` for root, else `/tmp/gatewire-<uid>`.
pub fn run_dir_base() -> PathBuf {
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(runtime).join("gatewire");
    }
    // SAFETY: geteuid has no preconditions.
    match unsafe { libc::geteuid() } {
        0 => PathBuf::from("/run/gatewire"),
        uid => PathBuf::from(format!("/tmp/gatewire-{uid}")),
    }
}

impl Config {
    /// The run directory: `[run] dir`, or the well-known one for `[run] name`.
    pub fn run_dir(&self) -> PathBuf {
        self.run
            .dir
            .clone()
            .unwrap_or_else(|| run_dir_base().join(&self.run.name))
    }

    /// The log filter of a process running `roles`: `[run] log`, refined per role module.
    pub fn log_filter(&self, roles: &[Role]) -> String {
        let mut filter = self.run.log.clone();
        for (role, module, level) in [
            (Role::Register, "register", &self.register.log),
            (Role::Gateway, "gateway", &self.gateway.log),
            (Role::Worker, "worker", &self.worker.log),
            (Role::Api, "http_api", &self.api.log),
        ] {
            if let Some(level) = level.as_ref().filter(|_| roles.contains(&role)) {
                if roles.len() == 1 {
                    // A process of one role: everything it logs is that role's.
                    filter = level.clone();
                } else {
                    filter.push_str(&format!(",gatewire::{module}={level}"));
                }
            }
        }
        filter
    }

    /// A copy to show people: every non-empty secret replaced by `********`, also a password
    /// inside `store.redis_url`.
    pub fn with_secrets_masked(&self) -> Config {
        let mut shown = self.clone();
        shown.store.redis_url = url_password_masked(&shown.store.redis_url);
        for secret in [
            &mut shown.register.secret_key,
            &mut shown.gateway.secret_key,
            &mut shown.worker.secret_key,
            &mut shown.store.password,
            &mut shown.api.api_key,
            &mut shown.api.secret_key,
            &mut shown.worker.http.api_key,
            &mut shown.gateway.auth.secret,
        ] {
            if !secret.is_empty() {
                *secret = "********".into();
            }
        }
        shown
    }
}
