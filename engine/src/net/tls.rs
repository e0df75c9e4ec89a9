//! TLS for `wss://` listeners (rustls; its ring provider, the one crate feature enabled, is the
//! process default, so no deprecated constructor is called): loading the certificate chain and
//! key, and the [`TlsSlot`] every shard takes its configuration from at each handshake, so a
//! renewed certificate is used without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Builds the server configuration from PEM files. Errors name the file.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("gateway.tls_cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("gateway.tls_cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "gateway.tls_cert {}: no certificate found",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("gateway.tls_key {}: {e}", key.display()))?;
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("gateway.tls_cert/tls_key: {e}"))?;
    Ok(Arc::new(config))
}

/// The gateway's current TLS configuration, shared by its shards: each new connection takes the
/// configuration in the slot at its accept; [`TlsSlot::reload`] replaces it (connections already
/// open keep theirs).
#[derive(Debug, Clone)]
pub struct TlsSlot {
    current: Arc<RwLock<Arc<ServerConfig>>>,
    cert: PathBuf,
    key: PathBuf,
}

impl TlsSlot {
    /// Loads `cert` and `key`; errors name the file.
    pub fn load(cert: &Path, key: &Path) -> Result<TlsSlot, String> {
        Ok(TlsSlot {
            current: Arc::new(RwLock::new(server_config(cert, key)?)),
            cert: cert.to_owned(),
            key: key.to_owned(),
        })
    }

    /// The configuration a new connection uses.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the files again; the new pair is used from the next handshake on. A pair that does
    /// not load (a missing file, a key that is not the certificate's) is refused with the
    /// reason, and the one in use stays.
    pub fn reload(&self) -> Result<String, String> {
        let fresh = server_config(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(format!(
            "tls: {} and {} loaded; new handshakes use them",
            self.cert.display(),
            self.key.display()
        ))
    }
}
