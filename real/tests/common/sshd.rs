//! A real OpenSSH server on loopback for the SSH tests: Debian's `openssh-server`, its
//! own host key, client key, config and known_hosts in a temporary directory, killed on
//! drop. Nothing of the machine's own sshd setup (or `~/.ssh`) takes part.

use lifeboat_real::ssh::SshTarget;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// One sshd on 127.0.0.1, configured but maybe not yet started (see [`Sshd::launch`]).
pub struct Sshd {
    // Dropped last: the files live until the server is gone.
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
    user: String,
    config: PathBuf,
    host_pub: String,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A new ed25519 key pair at `path` (and `path.pub`); returns the public key line.
pub fn keygen(path: &Path) -> String {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "lifeboat-test", "-f"])
        .arg(path));
    std::fs::read_to_string(path.with_extension("pub")).expect("public key written")
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

impl Sshd {
    /// Configures and starts a server, and waits until it accepts connections.
    pub fn start() -> Sshd {
        let mut s = Sshd::configure();
        s.launch();
        s
    }

    /// Generates the keys, config and known_hosts; the server is not running yet.
    pub fn configure() -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: run scripts/test.sh, which installs openssh-server"
        );
        // sshd's privilege separation directory; Debian's package creates it at boot.
        std::fs::create_dir_all("/run/sshd").expect("creating /run/sshd");
        // A short path: ssh's control sockets live under it (unix sockets: <108 bytes).
        let dir = tempfile::Builder::new()
            .prefix("lbssh")
            .tempdir_in("/tmp")
            .expect("temporary directory");
        let d = dir.path();
        let host_pub = keygen(&d.join("host_ed25519"));
        let client_pub = keygen(&d.join("client_ed25519"));
        std::fs::write(d.join("authorized_keys"), client_pub).unwrap();
        let user = run(Command::new("id").arg("-un")).trim().to_string();
        let port = free_port();
        let config = d.join("sshd_config");
        let mut s = Sshd {
            dir,
            child: None,
            port,
            user,
            config,
            host_pub,
        };
        s.write_config();
        let line = s.known_hosts_line();
        std::fs::write(s.dir.path().join("known_hosts"), line).unwrap();
        s
    }

    fn write_config(&mut self) {
        let d = self.dir.path().display();
        let config = format!(
            "ListenAddress 127.0.0.1:{port}
HostKey {d}/host_ed25519
AuthorizedKeysFile {d}/authorized_keys
PidFile {d}/sshd.pid
PubkeyAuthentication yes
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
MaxSessions 32
LogLevel VERBOSE
",
            port = self.port
        );
        std::fs::write(&self.config, config).unwrap();
    }

    /// Starts the server and waits until its port accepts connections.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.dir.path().join("sshd.log")).unwrap();
        let mut child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {SSHD}: {e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("sshd exited with {status}:\n{}", self.log());
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "sshd does not accept on {addr}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }

    /// What the server wrote to stderr (`-e`), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The test's private directory (short enough to hold control sockets).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the tests' ssh control sockets go.
    pub fn control_dir(&self) -> PathBuf {
        self.dir.path().join("c")
    }

    /// This server's correct known_hosts line.
    pub fn known_hosts_line(&self) -> String {
        let mut fields = self.host_pub.split_whitespace();
        let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
        format!("[127.0.0.1]:{} {kind} {key}\n", self.port)
    }

    /// A target that logs in with the test's client key and trusts the right host key.
    pub fn target(&self) -> SshTarget {
        SshTarget {
            host: "127.0.0.1".into(),
            port: self.port,
            user: self.user.clone(),
            key: self.dir.path().join("client_ed25519"),
            known_hosts: self.dir.path().join("known_hosts"),
        }
    }

    /// Writes `content` to a known_hosts file named `name` in the test's directory.
    pub fn known_hosts_file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
