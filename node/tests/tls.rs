//! `arbor serve` and `arbor sync` over TLS, with certificates made here (rcgen): a sync over
//! TLS, mutual TLS accepted and refused, servers that name another host or whose certificate
//! expired refused, plaintext `--follow` refused without `--insecure-follow`, and a certificate
//! rotated while a sync runs.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::Stdio,
};

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    date_time_ymd,
};
use support::{Reaper, arbor, load, root_of, serve, terminate};

mod support;

/// A certificate authority made for one test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (DNS names or IP addresses) and its key, both PEM.
    fn issue(
        &self,
        names: &[&str],
        purpose: ExtendedKeyUsagePurpose,
        expired: bool,
    ) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.extended_key_usages = vec![purpose];
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }

    fn server(&self, names: &[&str]) -> (String, String) {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth, false)
    }

    fn client(&self) -> (String, String) {
        self.issue(
            &["replica.test"],
            ExtendedKeyUsagePurpose::ClientAuth,
            false,
        )
    }
}

/// Writes `contents` to `dir/name` (through a rename, so a reader never sees half a file).
fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    let partial = dir.join(format!(".{name}.partial"));
    std::fs::write(&partial, contents).expect("write");
    std::fs::rename(&partial, &path).expect("rename");
    path.display().to_string()
}

/// A database of `keys` keys under `dir`, served over TLS with `cert`/`key` (and `extra` flags).
fn serve_tls(
    dir: &Path,
    keys: &str,
    cert: &str,
    key: &str,
    extra: &[&str],
) -> (Reaper, String, String) {
    let db = dir.join("server");
    let root = load(&db, keys);
    let mut flags = vec!["--tls-cert", cert, "--tls-key", key];
    flags.extend_from_slice(extra);
    let (server, addr) = serve(&db, &flags);
    (server, format!("https://{addr}"), root)
}

/// `arbor sync` of `root` from `peer` into `dir/name` with `extra` flags; gives up after 3 s
/// without a useful answer.
fn sync(dir: &Path, name: &str, peer: &str, root: &str, extra: &[&str]) -> (bool, String, PathBuf) {
    let db = dir.join(name);
    let out = arbor()
        .args([
            "sync",
            "--db",
            &db.display().to_string(),
            "--peer",
            peer,
            "--root",
            root,
        ])
        .args(["--give-up-after", "3", "--request-timeout", "2"])
        .args(extra)
        .output()
        .expect("run sync");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        db,
    )
}

#[test]
fn mutual_tls_serves_clients_of_its_ca_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, other) = (Ca::new("arbor"), Ca::new("other"));
    let (cert, key) = ca.server(&["127.0.0.1"]);
    let ca_pem = write(dir.path(), "ca.pem", &ca.pem);
    let cert = write(dir.path(), "server.pem", &cert);
    let key = write(dir.path(), "server.key", &key);
    let (client_cert, client_key) = ca.client();
    let client_cert = write(dir.path(), "client.pem", &client_cert);
    let client_key = write(dir.path(), "client.key", &client_key);
    let (stranger_cert, stranger_key) = other.client();
    let stranger_cert = write(dir.path(), "stranger.pem", &stranger_cert);
    let stranger_key = write(dir.path(), "stranger.key", &stranger_key);

    // Plain TLS first: any client that trusts the CA.
    let (mut server, peer, root) = serve_tls(dir.path(), "5000", &cert, &key, &[]);
    let (ok, stderr, db) = sync(dir.path(), "plain", &peer, &root, &["--ca", &ca_pem]);
    assert!(ok, "sync over TLS failed: {stderr}");
    assert_eq!(root_of(&db), root);
    // A client that does not trust the server's CA (the system roots) refuses it.
    let (ok, stderr, _) = sync(dir.path(), "untrusting", &peer, &root, &[]);
    assert!(!ok, "a server signed by an unknown CA was accepted");
    assert!(stderr.contains("giving up"), "{stderr}");
    terminate(&mut server);

    // Mutual TLS: the server asks for a certificate signed by its client CA.
    std::fs::remove_dir_all(dir.path().join("server")).expect("clean");
    let (mut server, peer, root) =
        serve_tls(dir.path(), "5000", &cert, &key, &["--client-ca", &ca_pem]);
    let with_cert = [
        "--ca",
        &ca_pem,
        "--client-cert",
        &client_cert,
        "--client-key",
        &client_key,
    ];
    let (ok, stderr, db) = sync(dir.path(), "mutual", &peer, &root, &with_cert);
    assert!(ok, "mutual TLS sync failed: {stderr}");
    assert_eq!(root_of(&db), root);
    let (ok, _, db) = sync(dir.path(), "anonymous", &peer, &root, &["--ca", &ca_pem]);
    assert!(!ok, "a client without a certificate was served");
    assert_ne!(root_of(&db), root);
    let stranger = [
        "--ca",
        &ca_pem,
        "--client-cert",
        &stranger_cert,
        "--client-key",
        &stranger_key,
    ];
    let (ok, _, db) = sync(dir.path(), "stranger", &peer, &root, &stranger);
    assert!(!ok, "a client certificate from another CA was accepted");
    assert_ne!(root_of(&db), root);
    terminate(&mut server);
}

#[test]
fn servers_naming_another_host_or_expired_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("arbor");
    let ca_pem = write(dir.path(), "ca.pem", &ca.pem);
    let cases = [
        ("another host", ca.server(&["other.example"])),
        (
            "expired",
            ca.issue(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth, true),
        ),
    ];
    for (case, (cert, key)) in cases {
        let cert = write(dir.path(), "server.pem", &cert);
        let key = write(dir.path(), "server.key", &key);
        let (mut server, peer, root) = serve_tls(dir.path(), "1000", &cert, &key, &[]);
        let (ok, stderr, db) = sync(dir.path(), "client", &peer, &root, &["--ca", &ca_pem]);
        assert!(!ok, "{case}: accepted");
        assert!(stderr.contains("giving up"), "{case}: {stderr}");
        assert_ne!(root_of(&db), root, "{case}: synced anyway");
        terminate(&mut server);
        std::fs::remove_dir_all(dir.path().join("server")).expect("clean");
        std::fs::remove_dir_all(&db).expect("clean");
    }
}

#[test]
fn plaintext_follow_needs_the_insecure_flag_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db").display().to_string();
    let out = arbor()
        .args([
            "sync",
            "--db",
            &db,
            "--follow",
            "--peer",
            "http://127.0.0.1:1",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--insecure-follow") && stderr.contains("authenticated"),
        "{stderr}"
    );
    // A fixed root over plaintext stays allowed: the proofs carry the trust there.
    let root = load(&dir.path().join("server"), "1000");
    let (mut server, addr) = serve(&dir.path().join("server"), &[]);
    let out = arbor()
        .args([
            "sync",
            "--db",
            &dir.path().join("replica").display().to_string(),
        ])
        .args(["--peer", &format!("http://{addr}"), "--root", &root])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    terminate(&mut server);
}

#[test]
fn a_certificate_rotated_while_a_sync_runs_is_picked_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (old_ca, new_ca) = (Ca::new("old"), Ca::new("new"));
    let (cert, key) = old_ca.server(&["127.0.0.1"]);
    let cert = write(dir.path(), "server.pem", &cert);
    let key = write(dir.path(), "server.key", &key);
    let both = write(
        dir.path(),
        "both.pem",
        &format!("{}{}", old_ca.pem, new_ca.pem),
    );
    let new_only = write(dir.path(), "new.pem", &new_ca.pem);
    let (mut server, peer, root) = serve_tls(dir.path(), "400000", &cert, &key, &[]);

    let replica = dir.path().join("replica").display().to_string();
    let mut sync = Reaper(
        arbor()
            .args([
                "sync", "--db", &replica, "--peer", &peer, "--root", &root, "--ca", &both,
            ])
            .args(["--workers", "1", "--json", "--progress-ms", "50"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sync"),
    );
    let lines = BufReader::new(sync.0.stdout.take().expect("stdout")).lines();
    let mut rotated = false;
    for line in lines.map_while(Result::ok) {
        let event: serde_json::Value = serde_json::from_str(&line).expect("json line");
        let percent = event["percent"].as_f64().unwrap_or(0.0);
        if !rotated && event["event"] == "progress" && percent > 0.0 {
            assert!(percent < 100.0, "the sync finished before the rotation");
            let (cert, key) = new_ca.server(&["127.0.0.1"]);
            write(dir.path(), "server.key", &key);
            write(dir.path(), "server.pem", &cert);
            let pid = server.0.id().to_string();
            let hup = std::process::Command::new("kill")
                .args(["-HUP", &pid])
                .status();
            assert!(hup.expect("kill").success());
            rotated = true;
        }
        if event["event"] == "done" {
            assert!(rotated, "the sync finished before the rotation");
        }
    }
    let status = sync.0.wait().expect("wait");
    assert!(status.success(), "the sync did not survive the rotation");
    assert_eq!(root_of(Path::new(&replica)), root);
    // New connections get the new certificate: a client trusting only the new CA is served.
    let (ok, stderr, db) = sync_once(dir.path(), &peer, &root, &new_only);
    assert!(ok, "the new certificate is not served: {stderr}");
    assert_eq!(root_of(&db), root);
    terminate(&mut server);
}

/// A fresh sync trusting only `ca`.
fn sync_once(dir: &Path, peer: &str, root: &str, ca: &str) -> (bool, String, PathBuf) {
    // The reload runs on the server's SIGHUP handler: give it a moment.
    std::thread::sleep(std::time::Duration::from_millis(300));
    sync(dir, "second", peer, root, &["--ca", ca])
}
