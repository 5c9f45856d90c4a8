//! SSH to real machines: the one way `--backend real` acts on a server.
//!
//! Why a layer over [`openssh`] at all: every caller needs the same safety settings
//! (host keys always checked against a file lifeboat controls, never the user's
//! `~/.ssh`, key-only logins), the same error shape (host, command, tail of stderr), and
//! the same answer to "did the command fail, or did the connection?" — which raw ssh
//! blurs, since both show as exit status 255.
//!
//! Each [`Remote`] is one OpenSSH ControlMaster; every command is a new session
//! multiplexed over it, so a command costs a round trip, not a handshake. sshd caps the
//! sessions open at once on one connection (`MaxSessions`, 10 by default), so keep fewer
//! than that many commands in flight per [`Remote`].
//!
//! Error messages quote the command they ran (abbreviated). Secrets therefore never go on
//! a command line: they travel on stdin ([`Remote::run_with_input`],
//! [`Remote::write_file`]). Nothing here logs.

use anyhow::{anyhow, bail, Context};
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use std::io::Write as _;
use std::num::NonZeroUsize;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

/// Where and how to reach one machine over SSH.
#[derive(Clone, Debug)]
pub struct SshTarget {
    /// Host name or IP address.
    pub host: String,
    /// TCP port of the machine's sshd.
    pub port: u16,
    /// The login user.
    pub user: String,
    /// The private key to log in with; the only key offered.
    pub key: PathBuf,
    /// The known_hosts file that must hold the machine's host key; the only one consulted.
    pub known_hosts: PathBuf,
}

impl SshTarget {
    /// `user@host:port`, the way every error names the machine.
    fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            format!("{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

/// The result of one remote command.
#[derive(Clone, Debug)]
pub struct CmdOutput {
    /// The exit code; `None` when the command died of a signal or exited with 255, which
    /// ssh reports identically (a lost connection is an error, never `None`).
    pub status: Option<i32>,
    /// Everything the command wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the command wrote to stderr.
    pub stderr: Vec<u8>,
}

impl CmdOutput {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// stdout as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// How long one TCP connect to sshd may take before ssh gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A master idle this long exits by itself, so one left behind by a lifeboat that was
/// killed outright does not live forever; no drill leaves a node untouched for an hour.
const MASTER_IDLE_EXIT: usize = 3600;

/// The longest control directory that still fits ssh's control socket: openssh puts
/// `/.ssh-connectionXXXXXX/master` inside it and ssh binds a temporary
/// `master.XXXXXXXXXXXXXXXX` before renaming it, and a unix socket path has at most 107
/// bytes.
const MAX_CONTROL_DIR_LEN: usize = 107 - "/.ssh-connectionXXXXXX/master.XXXXXXXXXXXXXXXX".len();

/// The whole ssh configuration lifeboat uses: `-F` makes ssh read this instead of
/// `~/.ssh/config` and `/etc/ssh/ssh_config`, so nothing of the user's setup (agents,
/// other keys, global known hosts, forwardings) takes part.
const SSH_CONFIG: &str = "\
# Written by lifeboat; ssh reads this file instead of ~/.ssh/config and /etc/ssh/ssh_config.
GlobalKnownHostsFile /dev/null
CheckHostIP no
UpdateHostKeys no
HashKnownHosts no
PreferredAuthentications publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
IdentityAgent none
ForwardAgent no
ForwardX11 no
ServerAliveCountMax 3
";

/// How many trailing lines and bytes of stderr an error quotes.
const TAIL_LINES: usize = 12;
const TAIL_BYTES: usize = 2000;

/// One multiplexed connection to one machine.
pub struct Remote {
    target: SshTarget,
    session: Session,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("target", &self.target.addr())
            .finish_non_exhaustive()
    }
}

/// Why a connection attempt failed, as far as retrying is concerned.
#[derive(Debug, PartialEq, Eq)]
enum ConnectFailure {
    /// The server's host key is not the one in known_hosts (or none is there): retrying
    /// cannot fix that, and must not appear to.
    HostKey,
    /// Our side is wrong (a missing key file, a bad host name): waiting cannot fix it.
    Local,
    /// Anything else: refused, timed out, reset while sshd starts, key not yet installed.
    Other,
}

fn classify(ssh_text: &str) -> ConnectFailure {
    const HOST_KEY_SIGNS: [&str; 3] = [
        "Host key verification failed",
        "REMOTE HOST IDENTIFICATION HAS CHANGED",
        "you have requested strict checking",
    ];
    if HOST_KEY_SIGNS.iter().any(|s| ssh_text.contains(s)) {
        ConnectFailure::HostKey
    } else {
        ConnectFailure::Other
    }
}

/// An [`openssh::Error`] with ssh's own words: openssh's `Display` is generic ("failed to
/// connect to the remote host") and the useful text sits in the source chain.
fn ssh_error_text(e: &openssh::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let t = s.to_string();
        if !t.trim().is_empty() {
            text.push_str(": ");
            text.push_str(t.trim());
        }
        source = s.source();
    }
    text
}

/// The last lines of a command's stderr, for an error message.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    if out.len() > TAIL_BYTES {
        let mut cut = out.len() - TAIL_BYTES;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = format!("…{}", &out[cut..]);
    }
    out
}

/// A command as errors quote it: its first line, at most 160 characters.
fn abbrev(cmd: &str) -> String {
    let first = cmd.trim().lines().next().unwrap_or("");
    let mut out: String = first.chars().take(160).collect();
    if out.len() < first.len() || cmd.trim().lines().nth(1).is_some() {
        out.push_str(" …");
    }
    out
}

fn describe_status(status: Option<i32>) -> String {
    match status {
        Some(code) => format!("exited with status {code}"),
        None => "died of a signal or exited with status 255".to_string(),
    }
}

fn with_stderr(msg: String, stderr: &[u8]) -> String {
    let t = tail(stderr);
    if t.is_empty() {
        format!("{msg} (no stderr)")
    } else {
        format!("{msg}; stderr:\n{t}")
    }
}

fn check_target(target: &SshTarget) -> anyhow::Result<()> {
    // ssh takes the destination as a bare argument: a host starting with '-' would be
    // read as an option.
    if target.host.is_empty()
        || target.host.starts_with('-')
        || target.host.chars().any(|c| c.is_whitespace() || c == '@')
    {
        bail!("ssh: {:?} is not a host name or address", target.host);
    }
    if target.user.is_empty() || target.user.starts_with('-') {
        bail!("ssh: {:?} is not a user name", target.user);
    }
    for (what, p) in [
        ("key", &target.key),
        ("known_hosts file", &target.known_hosts),
    ] {
        if !p.is_file() {
            bail!(
                "ssh {}: the {what} {} does not exist",
                target.addr(),
                p.display()
            );
        }
    }
    Ok(())
}

/// Creates the control directory (private) and writes lifeboat's ssh config into it.
fn prepare_control_dir(control_dir: &Path) -> anyhow::Result<PathBuf> {
    let len = control_dir.as_os_str().len();
    if len > MAX_CONTROL_DIR_LEN {
        bail!(
            "ssh control directory {} is {len} bytes long; ssh's control socket inside it \
             must stay under 108 bytes, so use a directory of at most {MAX_CONTROL_DIR_LEN} \
             bytes (for example under /tmp)",
            control_dir.display()
        );
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(control_dir)
        .with_context(|| format!("creating ssh control directory {}", control_dir.display()))?;
    let config = control_dir.join("ssh_config");
    // Several connections may start at once: each writes its own copy and renames it
    // into place, so ssh never reads a half-written file.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = control_dir.join(format!(
        "ssh_config.{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(SSH_CONFIG.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &config)
    };
    write().with_context(|| format!("writing {}", config.display()))?;
    Ok(config)
}

impl Remote {
    /// Connects with host-key checking strict (the key must already be in
    /// `target.known_hosts`: never disabled, never accept-new), key-only login with
    /// `target.key`, BatchMode, a 10 s connect timeout and keep-alives (a server gone for
    /// 45 s ends the connection). `control_dir` holds the control socket: at most 61
    /// bytes long, created if missing; several connections may share it. A connection
    /// left unused for an hour closes itself (so one outliving a killed lifeboat does not
    /// stay forever); commands on it then fail with "connection lost".
    pub async fn connect(target: &SshTarget, control_dir: &Path) -> anyhow::Result<Remote> {
        Self::connect_once(target, control_dir, CONNECT_TIMEOUT)
            .await
            .map_err(|(_, e)| e)
    }

    async fn connect_once(
        target: &SshTarget,
        control_dir: &Path,
        timeout: Duration,
    ) -> Result<Remote, (ConnectFailure, anyhow::Error)> {
        let local = |e: anyhow::Error| (ConnectFailure::Local, e);
        check_target(target).map_err(local)?;
        let config = prepare_control_dir(control_dir).map_err(local)?;
        let mut b = SessionBuilder::default();
        b.user(target.user.clone())
            .port(target.port)
            .keyfile(&target.key)
            .known_hosts_check(KnownHosts::Strict)
            .user_known_hosts_file(&target.known_hosts)
            .config_file(&config)
            .connect_timeout(timeout.max(Duration::from_secs(1)))
            .server_alive_interval(Duration::from_secs(15))
            .control_directory(control_dir)
            .control_persist(ControlPersist::IdleFor(
                NonZeroUsize::new(MASTER_IDLE_EXIT).expect("nonzero"),
            ));
        match b.connect(&target.host).await {
            Ok(session) => Ok(Remote {
                target: target.clone(),
                session,
            }),
            Err(e) => {
                let text = ssh_error_text(&e);
                let kind = classify(&text);
                let msg = match kind {
                    ConnectFailure::HostKey => format!(
                        "ssh {}: host key verification failed: the server's host key is not \
                         the one recorded in {} (lifeboat never accepts unknown or changed \
                         host keys): {text}",
                        target.addr(),
                        target.known_hosts.display()
                    ),
                    _ => format!("ssh {}: {text}", target.addr()),
                };
                Err((kind, anyhow!(msg)))
            }
        }
    }

    /// Retries [`Remote::connect`] until `deadline` has elapsed (servers booting), with
    /// back-off from 0.5 s to 5 s. A host key mismatch or unknown host key fails at once
    /// and is never retried, as does a missing key or known_hosts file. A refused key is
    /// retried: a booting server may not have installed it yet. The error names `user@host:port`, the time waited and the
    /// last failure.
    pub async fn connect_retrying(
        target: &SshTarget,
        control_dir: &Path,
        deadline: Duration,
    ) -> anyhow::Result<Remote> {
        let start = Instant::now();
        let mut backoff = Duration::from_millis(500);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let left = deadline.saturating_sub(start.elapsed());
            match Self::connect_once(target, control_dir, left.min(CONNECT_TIMEOUT)).await {
                Ok(r) => return Ok(r),
                Err((ConnectFailure::HostKey | ConnectFailure::Local, e)) => return Err(e),
                Err((ConnectFailure::Other, e)) => {
                    let left = deadline.saturating_sub(start.elapsed());
                    if left.is_zero() {
                        return Err(e.context(format!(
                            "ssh {}: not reachable within {:.0?} ({attempts} attempts); the \
                             last failure follows",
                            target.addr(),
                            deadline
                        )));
                    }
                    tokio::time::sleep(backoff.min(left)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// The machine this connection reaches.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// A remote `sh -c cmd`, quoted here rather than by openssh, so the remote login
    /// shell undoes exactly one level of quoting whatever `cmd` holds.
    fn command(&self, cmd: &str) -> openssh::OwningCommand<&Session> {
        let mut c = self.session.raw_command("sh");
        c.raw_arg("-c").raw_arg(shell_quote(cmd));
        c
    }

    /// Turns ssh's exit into the command's status, telling a lost connection (an
    /// error) from a command that exited 255 or died of a signal (`None`).
    async fn status_of(
        &self,
        cmd: &str,
        waited: Result<ExitStatus, openssh::Error>,
    ) -> anyhow::Result<Option<i32>> {
        match waited {
            Ok(s) => Ok(s.code()),
            // ssh's 127 is the remote shell's "not found"; openssh turns it into an
            // error, but for `sh -c` it is an ordinary exit status.
            Err(openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Some(127))
            }
            Err(openssh::Error::RemoteProcessTerminated) => match self.session.check().await {
                Ok(()) => Ok(None),
                Err(e) => Err(anyhow!(
                    "ssh {}: connection lost while running `{}`: {}",
                    self.target.addr(),
                    abbrev(cmd),
                    ssh_error_text(&e)
                )),
            },
            Err(e) => Err(anyhow!(
                "ssh {}: running `{}`: {}",
                self.target.addr(),
                abbrev(cmd),
                ssh_error_text(&e)
            )),
        }
    }

    fn spawn_error(&self, cmd: &str, e: openssh::Error) -> anyhow::Error {
        anyhow!(
            "ssh {}: starting `{}`: {}",
            self.target.addr(),
            abbrev(cmd),
            ssh_error_text(&e)
        )
    }

    async fn exec(&self, cmd: &str, input: Option<&[u8]>) -> anyhow::Result<CmdOutput> {
        let mut c = self.command(cmd);
        c.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().await.map_err(|e| self.spawn_error(cmd, e))?;
        let stdin = child.stdin().take();
        let stdout = child.stdout().take();
        let stderr = child.stderr().take();
        // Feed stdin while draining both outputs: a command that answers as it reads
        // (or fills its stderr) would otherwise block on a full pipe, and so would we.
        let feed = async move {
            if let (Some(mut w), Some(data)) = (stdin, input) {
                // A command that exits without reading all of its input is judged by
                // its exit status, not by the broken pipe.
                let _ = w.write_all(data).await;
                let _ = w.shutdown().await;
            }
        };
        let (_, out, err) = tokio::join!(feed, read_all(stdout), read_all(stderr));
        let (stdout, stderr) = (
            out.map_err(|e| self.io_error(cmd, "reading stdout", e))?,
            err.map_err(|e| self.io_error(cmd, "reading stderr", e))?,
        );
        let status = self.status_of(cmd, child.wait().await).await?;
        Ok(CmdOutput {
            status,
            stdout,
            stderr,
        })
    }

    fn io_error(&self, cmd: &str, what: &str, e: std::io::Error) -> anyhow::Error {
        anyhow!(
            "ssh {}: {what} of `{}`: {e}",
            self.target.addr(),
            abbrev(cmd)
        )
    }

    /// Runs `sh -c cmd` remotely and returns its output whatever the exit status. An
    /// error means the command could not run or the connection was lost.
    pub async fn run(&self, cmd: &str) -> anyhow::Result<CmdOutput> {
        self.exec(cmd, None).await
    }

    /// Like [`Remote::run`], but a non-zero exit is an error naming the host, the
    /// command and the tail of its stderr. Returns stdout as text.
    pub async fn check(&self, cmd: &str) -> anyhow::Result<String> {
        let out = self.run(cmd).await?;
        self.require_success(cmd, &out)?;
        Ok(out.stdout_text())
    }

    fn require_success(&self, cmd: &str, out: &CmdOutput) -> anyhow::Result<()> {
        if out.success() {
            return Ok(());
        }
        Err(anyhow!(with_stderr(
            format!(
                "ssh {}: `{}` {}",
                self.target.addr(),
                abbrev(cmd),
                describe_status(out.status)
            ),
            &out.stderr
        )))
    }

    /// Runs `sh -c cmd` with `input` on its stdin (e.g. `cat > path`), returning its
    /// output whatever the exit status.
    pub async fn run_with_input(&self, cmd: &str, input: &[u8]) -> anyhow::Result<CmdOutput> {
        self.exec(cmd, Some(input)).await
    }

    /// Writes a file with the given mode (e.g. `0o600`), creating its parent
    /// directories. The contents travel on stdin, never on the command line (they may
    /// be secret); the file is written beside the target, private until its mode is
    /// set, and renamed into place, so readers never see a partial file.
    pub async fn write_file(&self, path: &str, contents: &[u8], mode: u32) -> anyhow::Result<()> {
        if path.is_empty() || path.ends_with('/') {
            bail!("ssh {}: {path:?} is not a file path", self.target.addr());
        }
        let p = shell_quote(path);
        let cmd = format!(
            "set -e; p={p}; mkdir -p -- \"$(dirname -- \"$p\")\"; t=\"$p.lifeboat-tmp.$$\"; \
             (umask 077; cat > \"$t\"); chmod {mode:o} -- \"$t\"; mv -f -- \"$t\" \"$p\""
        );
        let out = self.run_with_input(&cmd, contents).await?;
        self.require_success(&cmd, &out)
            .with_context(|| format!("writing {path} on {}", self.target.addr()))
    }

    /// Ends the connection (the ControlMaster exits). Dropping a [`Remote`] does the
    /// same, blocking briefly.
    pub async fn close(self) -> anyhow::Result<()> {
        let addr = self.target.addr();
        self.session
            .close()
            .await
            .map_err(|e| anyhow!("ssh {addr}: closing: {}", ssh_error_text(&e)))
    }
}

async fn read_all<R: AsyncRead + Unpin>(r: Option<R>) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(mut r) = r {
        r.read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

/// Streams the stdout of `from_cmd` on `from` into the stdin of `to_cmd` on `to` through
/// this process, a buffer at a time (the runbook's `docker save img | gzip -1` on node A
/// into `gunzip | docker load` on node B), and returns the bytes streamed. Both exit
/// statuses are checked; an error says which side failed (sending or receiving), with
/// its host, command and stderr tail. Only the last command of a shell pipeline sets
/// its status (`sh` has no pipefail), so a failure early in `from_cmd` shows as a
/// receiver that cannot read what it got.
pub async fn stream(
    from: &Remote,
    from_cmd: &str,
    to: &Remote,
    to_cmd: &str,
) -> anyhow::Result<u64> {
    let mut src = from.command(from_cmd);
    src.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut src = src
        .spawn()
        .await
        .map_err(|e| from.spawn_error(from_cmd, e))
        .context("sending side of the stream")?;
    let mut dst = to.command(to_cmd);
    dst.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut dst = match dst.spawn().await {
        Ok(d) => d,
        Err(e) => {
            // Nothing will read the sender's output: end it rather than leave it
            // blocked on a full pipe.
            let _ = src.disconnect().await;
            return Err(to.spawn_error(to_cmd, e)).context("receiving side of the stream");
        }
    };
    let src_out = src.stdout().take().expect("piped");
    let src_err = src.stderr().take();
    let dst_in = dst.stdin().take().expect("piped");
    let dst_out = dst.stdout().take();
    let dst_err = dst.stderr().take();

    // Both pipe ends move into the copy and are dropped when it ends: the receiver sees
    // EOF, and a sender whose receiver died sees a broken pipe instead of blocking.
    let copy = async move {
        let mut reader = BufReader::with_capacity(256 * 1024, src_out);
        let mut writer = dst_in;
        let n = tokio::io::copy_buf(&mut reader, &mut writer).await;
        let shut = writer.shutdown().await;
        n.and_then(|n| shut.map(|()| n))
    };
    let (copied, src_err, _dst_out, dst_err) = tokio::join!(
        copy,
        read_all(src_err),
        read_all(dst_out),
        read_all(dst_err)
    );
    let src_err = src_err.unwrap_or_default();
    let dst_err = dst_err.unwrap_or_default();
    let src_status = from.status_of(from_cmd, src.wait().await).await;
    let dst_status = to.status_of(to_cmd, dst.wait().await).await;

    let side = |name: &str, r: &Remote, cmd: &str, st: &anyhow::Result<Option<i32>>, err: &[u8]| {
        match st {
            Ok(Some(0)) => None,
            Ok(s) => Some(with_stderr(
                format!(
                    "{name} side {}: `{}` {}",
                    r.target.addr(),
                    abbrev(cmd),
                    describe_status(*s)
                ),
                err,
            )),
            Err(e) => Some(format!("{name} side: {e:#}")),
        }
    };
    let failures: Vec<String> = [
        side("sending", from, from_cmd, &src_status, &src_err),
        side("receiving", to, to_cmd, &dst_status, &dst_err),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !failures.is_empty() {
        bail!("stream failed: {}", failures.join("\n"));
    }
    copied.map_err(|e| {
        anyhow!(
            "stream from {} to {}: copying: {e}",
            from.target.addr(),
            to.target.addr()
        )
    })
}

/// Single-quotes a string for `sh`: the result is one word that expands to exactly `s`.
pub fn shell_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_survives_sh() {
        for s in [
            "",
            "plain",
            "it's",
            "a b\tc\nd",
            "$(rm -rf /)",
            "`x` \"y\" \\z '",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(s)))
                .output()
                .expect("sh runs");
            assert_eq!(String::from_utf8_lossy(&out.stdout), s, "quoting {s:?}");
        }
    }

    #[test]
    fn host_key_failures_are_recognised() {
        assert_eq!(
            classify("Host key verification failed."),
            ConnectFailure::HostKey
        );
        assert_eq!(
            classify(
                "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested \
                 strict checking.\r\nHost key verification failed."
            ),
            ConnectFailure::HostKey
        );
        assert_eq!(
            classify("connect to host 10.0.0.1 port 22: Connection refused"),
            ConnectFailure::Other
        );
        assert_eq!(
            classify("root@10.0.0.1: Permission denied (publickey)."),
            ConnectFailure::Other
        );
    }

    #[test]
    fn control_dir_length_is_checked() {
        let long = PathBuf::from(format!("/tmp/{}", "d".repeat(MAX_CONTROL_DIR_LEN)));
        let err = prepare_control_dir(&long).unwrap_err().to_string();
        assert!(err.contains("108 bytes"), "{err}");
        // The longest allowed directory plus everything ssh adds is a valid socket path.
        assert_eq!(
            MAX_CONTROL_DIR_LEN + "/.ssh-connectionXXXXXX/master.XXXXXXXXXXXXXXXX".len(),
            107
        );
    }

    #[test]
    fn tails_and_abbreviations_are_bounded() {
        let many: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let t = tail(many.as_bytes());
        assert!(t.starts_with("line 88") && t.ends_with("line 99"), "{t}");
        assert!(tail("é".repeat(3000).as_bytes()).len() <= TAIL_BYTES + 4);
        assert_eq!(abbrev("true"), "true");
        assert_eq!(abbrev("set -e\nrm x"), "set -e …");
        assert_eq!(abbrev(&"x".repeat(500)).chars().count(), 162);
    }

    #[test]
    fn bad_targets_are_refused_before_ssh_runs() {
        let t = SshTarget {
            host: "-oProxyCommand=evil".into(),
            port: 22,
            user: "root".into(),
            key: "/nonexistent".into(),
            known_hosts: "/nonexistent".into(),
        };
        assert!(check_target(&t).is_err());
    }
}
