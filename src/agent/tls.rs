//! TLS for OpenFlow connections (`ssl:` and `pssl:` targets), as Open vSwitch does it.
//!
//! The switch has one key and certificate (`--private-key`, `--certificate`) and trusts one
//! set of CA certificates (`--ca-cert`), all PEM files. Authentication is mutual, as in OVS:
//! as a client (`ssl:`) the switch presents its certificate and verifies the controller's
//! against the CA; as a server (`pssl:`) it requires a client certificate and verifies it
//! against the CA.
//!
//! **Names are not checked.** OVS accepts any peer whose certificate chains to the CA,
//! whatever name it carries (controllers are usually addressed by IP and their certificates
//! name the controller, not the address). We do the same: the client side checks the chain,
//! validity dates and signatures and deliberately skips the host-name match rustls would
//! do; the server side never checks client names anyway.
//!
//! The configurations are built once, at start, from the files ([`TlsConfig::load`]); every
//! error is one line naming the option. Connections then use rustls' sans-IO
//! [`rustls::Connection`] inside the connection's [`Output`](super::Output), so the
//! bridge's control thread can write into a TLS connection as directly as into a TCP one.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, ServerConfig};
use rustls::{ServerConnection, SignatureScheme};

/// The three PEM files, as OVS's `--private-key`, `--certificate` and `--ca-cert` name them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub private_key: PathBuf,
    pub certificate: PathBuf,
    pub ca_cert: PathBuf,
}

/// The client and server TLS configurations built from [`TlsFiles`].
#[derive(Clone)]
pub struct TlsConfig {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsConfig { .. }")
    }
}

impl TlsConfig {
    /// Reads the three files and builds both configurations. Errors are one line naming the
    /// option and the file (missing, unreadable, no PEM item of the right kind, a key that
    /// does not match the certificate, a CA file without a usable certificate).
    pub fn load(files: &TlsFiles) -> anyhow::Result<Arc<TlsConfig>> {
        TlsConfig::load_named(files, ["--private-key", "--certificate", "--ca-cert"])
    }

    /// [`TlsConfig::load`] with the options named as given (key, certificate, CA), e.g. as
    /// a configuration file spells them.
    pub fn load_named(files: &TlsFiles, names: [&str; 3]) -> anyhow::Result<Arc<TlsConfig>> {
        let [key_name, cert_name, ca_name] = names;
        let opt = |name: &str, path: &Path| format!("{name} {}", path.display());
        let key = read_key(&files.private_key).with_context(|| opt(key_name, &files.private_key))?;
        let chain = read_certs(&files.certificate).with_context(|| opt(cert_name, &files.certificate))?;
        let cas = read_certs(&files.ca_cert).with_context(|| opt(ca_name, &files.ca_cert))?;
        let mut roots = RootCertStore::empty();
        for (i, ca) in cas.into_iter().enumerate() {
            roots
                .add(ca)
                .map_err(|e| anyhow!("certificate {} is not a usable CA: {e}", i + 1))
                .with_context(|| opt(ca_name, &files.ca_cert))?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(crypto::ring::default_provider());
        let key_opt = || {
            format!(
                "{key_name} {} with {cert_name} {}",
                files.private_key.display(),
                files.certificate.display()
            )
        };
        let client = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly {
                roots: roots.clone(),
                provider: provider.clone(),
            }))
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .with_context(key_opt)?;
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| opt(ca_name, &files.ca_cert))?;
        let server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .with_context(key_opt)?;
        Ok(Arc::new(TlsConfig { client: Arc::new(client), server: Arc::new(server) }))
    }

    /// The client side (the switch connecting to a controller, or a test's client).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }

    /// The server side (a `pssl:` listener, or a test's controller).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// A client session toward the controller at `ip` (no SNI is sent for an address).
    pub fn client(&self, ip: IpAddr) -> anyhow::Result<rustls::Connection> {
        let conn = ClientConnection::new(self.client.clone(), ServerName::IpAddress(ip.into()))?;
        Ok(conn.into())
    }

    /// A server session for an accepted connection.
    pub fn server(&self) -> anyhow::Result<rustls::Connection> {
        Ok(ServerConnection::new(self.server.clone())?.into())
    }
}

/// A PEM error as one short phrase.
fn pem_error(e: rustls::pki_types::pem::Error, what: &str) -> anyhow::Error {
    match e {
        rustls::pki_types::pem::Error::Io(e) => anyhow!("{e}"),
        rustls::pki_types::pem::Error::NoItemsFound => anyhow!("no PEM {what} in the file"),
        e => anyhow!("bad PEM: {e}"),
    }
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(e, "private key"))
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(e, "certificate"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e, "certificate"))?;
    if certs.is_empty() {
        bail!("no PEM certificate in the file");
    }
    Ok(certs)
}

/// Verifies a controller's certificate as OVS does: it must chain to one of our CAs (with
/// valid dates and signatures), whatever names it carries.
#[derive(Debug)]
struct ChainOnly {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        // Deliberately no `verify_server_name`: OVS checks the CA chain only.
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Certificates for tests: a CA and leaves it signs, written as PEM files.
#[cfg(test)]
pub(crate) mod test_pki {
    use super::TlsFiles;
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    use rcgen::{KeyUsagePurpose, SanType};
    use std::path::PathBuf;

    /// A certificate authority.
    pub struct Ca {
        cert: rcgen::Certificate,
        key: KeyPair,
        dir: PathBuf,
    }

    impl Ca {
        /// A fresh CA whose files go into a fresh directory named after `name`.
        pub fn new(name: &str) -> Ca {
            let dir = std::env::temp_dir().join(format!("xs-pki-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(DnType::CommonName, format!("{name} CA"));
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let cert = p.self_signed(&key).unwrap();
            std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
            Ca { cert, key, dir }
        }

        /// A key and certificate for `name` signed by this CA, with this CA as the trusted
        /// one: the three files of one party. The certificate names a host that is not the
        /// address connected to (names are not checked).
        pub fn party(&self, name: &str) -> TlsFiles {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(vec![format!("{name}.example")]).unwrap();
            p.subject_alt_names.push(SanType::DnsName(format!("{name}.invalid").try_into().unwrap()));
            p.distinguished_name.push(DnType::CommonName, name);
            p.is_ca = IsCa::ExplicitNoCa;
            p.extended_key_usages =
                vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
            let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
            let files = TlsFiles {
                private_key: self.dir.join(format!("{name}-key.pem")),
                certificate: self.dir.join(format!("{name}-cert.pem")),
                ca_cert: self.dir.join("ca.pem"),
            };
            std::fs::write(&files.private_key, key.serialize_pem()).unwrap();
            std::fs::write(&files.certificate, cert.pem()).unwrap();
            files
        }
    }

    impl Drop for Ca {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_pki::Ca;
    use super::*;

    #[test]
    fn loads_a_party_and_names_the_option_of_a_bad_file() {
        let ca = Ca::new("load");
        let files = ca.party("switch");
        TlsConfig::load(&files).expect("good files load");
        let err = |f: &TlsFiles| format!("{:#}", TlsConfig::load(f).unwrap_err());

        let missing = TlsFiles { private_key: "/nonexistent/key.pem".into(), ..files.clone() };
        let e = err(&missing);
        assert!(e.starts_with("--private-key /nonexistent/key.pem: "), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");

        // A certificate where the key should be: no key in the file.
        let no_key = TlsFiles { private_key: files.certificate.clone(), ..files.clone() };
        let e = err(&no_key);
        assert!(e.contains("--private-key") && e.contains("no PEM private key"), "{e}");

        let garbage = ca.party("garbage");
        std::fs::write(&garbage.certificate, "not a certificate\n").unwrap();
        let e = err(&garbage);
        assert!(e.starts_with("--certificate ") && e.contains("no PEM certificate"), "{e}");

        let bad_ca = TlsFiles { ca_cert: files.private_key.clone(), ..files.clone() };
        let e = err(&bad_ca);
        assert!(e.starts_with("--ca-cert ") && e.contains("no PEM certificate"), "{e}");

        // Another party's key with this certificate.
        let other = ca.party("other");
        let mismatch = TlsFiles { private_key: other.private_key.clone(), ..files.clone() };
        let e = err(&mismatch);
        assert!(e.starts_with("--private-key ") && e.contains("--certificate"), "{e}");
    }
}
