//! Faults on real Linux servers, as shell scripts.
//!
//! Why plain strings: `--dry-run` prints exactly what a live drill runs over SSH, so the
//! commands are data built here, without I/O, and [`crate::ssh::Remote::check`] runs
//! them (they are written for `sh`, as root).
//!
//! Why a dead-man's switch: a cut or a clock step outlives the SSH session that made
//! it. If lifeboat dies mid-drill (Ctrl-C, a crash, the laptop's lid), the servers must
//! not stay cut off or wrong in time. So every fault first arms a switch on the server:
//! a detached process (`setsid nohup sh -c 'sleep N; undo'`, in its own session so the
//! end of the SSH session does not end it, and needing nothing but a shell, so it works
//! on hosts without systemd) that undoes the fault after the deadline. Its pid is in
//! `/run/lifeboat-<tag>.pid` (`/tmp` when `/run` is not writable). The switch is armed
//! before the fault is applied, so there is no moment with a fault and no switch.
//! Healing undoes the fault first and kills the switch second, for the same reason; the
//! undo steps are idempotent, and once its deadline is up the switch ignores TERM, so a
//! heal racing the switch never interrupts a half-done undo.
//!
//! A switch still dies with its session if systemd-logind is set to
//! `KillUserProcesses=yes` (Debian and Ubuntu default to `no`), and with a reboot, which
//! clears iptables rules anyway.
//!
//! Tags name one applied fault (e.g. `<run>-cut-3`): they go into iptables comments
//! (`lifeboat-<tag>`) and file names, so they hold only ASCII letters, digits, `-`, `_`
//! and `.`. [`heal_all`] removes every fault whose tag starts with a prefix, for
//! teardown and Ctrl-C.

use crate::ssh::shell_quote;
use std::time::Duration;

/// A fault as two scripts: `apply` makes it (and arms its dead-man's switch), `heal`
/// undoes it (and disarms the switch). Both exit non-zero on failure; `heal` may run
/// any number of times, also after the switch has fired or when `apply` failed half-way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Armed {
    /// The script that applies the fault.
    pub apply: String,
    /// The script that heals it.
    pub heal: String,
}

/// Which traffic a cut drops, seen from the server it is applied on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Packets from the peer.
    Inbound,
    /// Packets to the peer.
    Outbound,
    /// Both.
    Both,
}

/// What [`process`] does to a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessVerb {
    /// SIGTERM, then SIGKILL after Docker's 10 s grace.
    Stop,
    /// SIGKILL at once.
    Kill,
    /// Freeze (cgroup freezer).
    Pause,
    /// Thaw a paused container.
    Unpause,
    /// Start a stopped or killed container.
    Start,
}

impl ProcessVerb {
    fn as_str(self) -> &'static str {
        match self {
            ProcessVerb::Stop => "stop",
            ProcessVerb::Kill => "kill",
            ProcessVerb::Pause => "pause",
            ProcessVerb::Unpause => "unpause",
            ProcessVerb::Start => "start",
        }
    }
}

fn valid_tag_chars(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn check_tag(tag: &str) {
    assert!(
        !tag.is_empty() && tag.len() <= 100 && valid_tag_chars(tag),
        "fault tag {tag:?} must be 1 to 100 ASCII letters, digits, '-', '_' or '.'"
    );
}

/// A tag as an extended regular expression: only `.` needs escaping in the tag alphabet.
fn regex_escape(tag: &str) -> String {
    tag.replace('.', "\\.")
}

/// Whole seconds, rounded up: a switch must never fire before its deadline.
fn whole_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// Sets `$d` to where this server keeps lifeboat's state files.
const PICK_DIR: &str = "if [ -d /run ] && [ -w /run ]; then d=/run; else d=/tmp; fi";

/// Arms a dead-man's switch named `name` (`lifeboat-<tag>`) that runs `undo` after
/// `secs`. `$d` must be set. `undo` runs in the switch's own shell, where `$0` is the
/// pid file's path. Waits until the switch has written its pid, so `heal` can find it.
fn arm_switch(name: &str, secs: u64, undo: &str) -> String {
    // `$$` is the switch's own pid, and with `setsid` it leads its own process group,
    // so killing the group takes its `sleep` along.
    let inner =
        format!("echo $$ > \"$0\"\nsleep {secs}\ntrap '' HUP INT TERM\n{undo}\nrm -f \"$0\"");
    format!(
        "pidf=\"$d/{name}.pid\"
setsid nohup sh -c {inner} \"$pidf\" </dev/null >/dev/null 2>&1 &
n=0
while [ ! -s \"$pidf\" ]; do
  n=$((n + 1))
  if [ \"$n\" -gt 100 ]; then echo \"lifeboat: the dead-man's switch {name} did not start\" >&2; exit 1; fi
  sleep 0.05
done",
        inner = shell_quote(&inner)
    )
}

/// Kills the switch whose pid file is `$f`, if the pid is still that switch (its command
/// line names the pid file), and removes the pid file.
const KILL_SWITCH_AT_F: &str = "  pid=$(cat \"$f\" 2>/dev/null || true)
  case \"$pid\" in
    ''|*[!0-9]*) ;;
    *) if grep -qaF -e \"/${f##*/}\" \"/proc/$pid/cmdline\" 2>/dev/null; then kill -TERM -\"$pid\" 2>/dev/null || true; fi ;;
  esac
  rm -f \"$f\"";

fn kill_switch(name: &str) -> String {
    format!(
        "for f in /run/{name}.pid /tmp/{name}.pid; do
  [ -f \"$f\" ] || continue
{KILL_SWITCH_AT_F}
done"
    )
}

struct Rule {
    ipt: &'static str,
    chain: &'static str,
    spec: String,
}

fn cut_rules(name: &str, peer_ip: &str, direction: Direction) -> Vec<Rule> {
    // Containers' traffic crosses FORWARD, not INPUT or OUTPUT: a node in Docker is cut
    // only if FORWARD drops it too.
    let ipt = if peer_ip.contains(':') {
        "ip6tables"
    } else {
        "iptables"
    };
    let peer = shell_quote(peer_ip);
    let comment = shell_quote(name);
    let rule = |chain, flag| Rule {
        ipt,
        chain,
        spec: format!("{flag} {peer} -m comment --comment {comment} -j DROP"),
    };
    let mut rules = Vec::new();
    if matches!(direction, Direction::Inbound | Direction::Both) {
        rules.push(rule("INPUT", "-s"));
        rules.push(rule("FORWARD", "-s"));
    }
    if matches!(direction, Direction::Outbound | Direction::Both) {
        rules.push(rule("OUTPUT", "-d"));
        rules.push(rule("FORWARD", "-d"));
    }
    rules
}

fn delete_rules(rules: &[Rule]) -> String {
    rules
        .iter()
        .map(|r| {
            format!(
                "while {} -w -D {} {} 2>/dev/null; do :; done",
                r.ipt, r.chain, r.spec
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Cuts traffic between this server and `peer_ip` (IPv4 or IPv6) in `direction` with
/// iptables DROP rules in INPUT/OUTPUT and FORWARD (for containers), commented
/// `lifeboat-<tag>`, healed by a dead-man's switch after `deadline` (whole seconds,
/// rounded up). Established connections are cut too: the rules match every packet.
///
/// # Panics
/// If `tag` holds anything but ASCII letters, digits, `-`, `_` and `.`.
pub fn cut(tag: &str, peer_ip: &str, direction: Direction, deadline: Duration) -> Armed {
    check_tag(tag);
    let name = format!("lifeboat-{tag}");
    let rules = cut_rules(&name, peer_ip, direction);
    let delete = delete_rules(&rules);
    let insert = rules
        .iter()
        .map(|r| format!("{} -w -I {} {}", r.ipt, r.chain, r.spec))
        .collect::<Vec<_>>()
        .join("\n");
    let apply = format!(
        "set -e
{PICK_DIR}
{kill}
{arm}
{insert}",
        kill = kill_switch(&name),
        arm = arm_switch(&name, whole_secs(deadline), &delete),
    );
    let ipt = rules[0].ipt;
    let heal = format!(
        "{delete}
{kill}
if {ipt} -w -S 2>/dev/null | grep -qE -e {needle}; then
  echo \"lifeboat: rules commented {name} are still in place\" >&2; exit 1
fi",
        kill = kill_switch(&name),
        needle = shell_quote(&format!("--comment \"?{}\"?( |$)", regex_escape(&name))),
    );
    Armed { apply, heal }
}

/// Puts the clock of the server whose state files are at `$b` (`$b.clock` holds the
/// applied offset in ms, `$b.sync` the time sync that was on) back and resumes time
/// sync. Each file is taken by an atomic rename, so of a heal and a switch racing, only
/// one steps the clock back.
const RESTORE_CLOCK_AT_B: &str = "if mv -f \"$b.clock\" \"$b.clock.$$\" 2>/dev/null; then
  off=$(cat \"$b.clock.$$\")
  case \"$off\" in ''|*[!0-9-]*) off=0 ;; esac
  ms=$(( $(date +%s%N) / 1000000 - (off) ))
  if date -s \"@$((ms / 1000)).$(printf %03d $((ms % 1000)))\" >/dev/null; then
    rm -f \"$b.clock.$$\"
  else
    mv -f \"$b.clock.$$\" \"$b.clock\"; echo \"lifeboat: stepping the clock back failed\" >&2
  fi
fi
if mv -f \"$b.sync\" \"$b.sync.$$\" 2>/dev/null; then
  while read -r svc; do
    case \"$svc\" in
      timedatectl) timedatectl set-ntp true >/dev/null 2>&1 || true ;;
      *) systemctl start \"$svc\" >/dev/null 2>&1 || true ;;
    esac
  done < \"$b.sync.$$\"
  rm -f \"$b.sync.$$\"
fi";

/// Steps this server's wall clock by `offset_ms` (either sign) with `date -s`, the new
/// time computed on the server in ms, after pausing time sync (timedatectl's NTP and
/// whichever of systemd-timesyncd, chrony, ntp, ntpsec and openntpd were running, each
/// tolerated absent). A dead-man's switch steps the clock back and resumes the same time
/// sync after `deadline`. `heal` steps back by the offset recorded at apply time, so a
/// second heal (or a heal after the switch fired) changes nothing. `apply` refuses a tag
/// whose step is still in place.
///
/// # Panics
/// If `tag` holds anything but ASCII letters, digits, `-`, `_` and `.`.
pub fn clock_step(tag: &str, offset_ms: i64, deadline: Duration) -> Armed {
    check_tag(tag);
    let name = format!("lifeboat-{tag}");
    let undo = format!("b=\"${{0%.pid}}\"\n{RESTORE_CLOCK_AT_B}");
    let apply = format!(
        "set -e
{PICK_DIR}
b=\"$d/{name}\"
if [ -e /run/{name}.clock ] || [ -e /tmp/{name}.clock ]; then
  echo \"lifeboat: clock step {name} is still in place; heal it first\" >&2; exit 1
fi
{kill}
{arm}
: > \"$b.sync.new\"
if command -v timedatectl >/dev/null 2>&1 && [ \"$(timedatectl show -p NTP --value 2>/dev/null)\" = yes ]; then
  echo timedatectl >> \"$b.sync.new\"
  timedatectl set-ntp false >/dev/null 2>&1 || true
fi
if command -v systemctl >/dev/null 2>&1; then
  for svc in systemd-timesyncd chrony chronyd ntp ntpsec openntpd; do
    if systemctl is-active --quiet \"$svc\" 2>/dev/null; then
      echo \"$svc\" >> \"$b.sync.new\"
      systemctl stop \"$svc\" >/dev/null 2>&1 || true
    fi
  done
fi
mv -f \"$b.sync.new\" \"$b.sync\"
echo {offset_ms} > \"$b.clock\"
ms=$(( $(date +%s%N) / 1000000 + ({offset_ms}) ))
if ! date -s \"@$((ms / 1000)).$(printf %03d $((ms % 1000)))\" >/dev/null; then
  rm -f \"$b.clock\"; echo \"lifeboat: date -s failed\" >&2; exit 1
fi",
        kill = kill_switch(&name),
        arm = arm_switch(&name, whole_secs(deadline), &undo),
    );
    let heal = format!(
        "for d in /run /tmp; do
b=\"$d/{name}\"
{RESTORE_CLOCK_AT_B}
done
{kill}
for d in /run /tmp; do
  if [ -e \"$d/{name}.clock\" ]; then echo \"lifeboat: the clock step {name} is still in place\" >&2; exit 1; fi
done",
        kill = kill_switch(&name),
    );
    Armed { apply, heal }
}

/// Heals every fault whose tag starts with `tag_prefix` (all of lifeboat's when empty):
/// steps clocks back and resumes time sync, deletes every iptables and ip6tables rule
/// in INPUT, OUTPUT and FORWARD whose comment starts with `lifeboat-<prefix>`, kills
/// every such switch. For teardown and Ctrl-C; exits non-zero if a rule or clock step
/// remains. Note that a prefix `r1` also matches tags starting with `r10`.
///
/// # Panics
/// If `tag_prefix` holds anything but ASCII letters, digits, `-`, `_` and `.`.
pub fn heal_all(tag_prefix: &str) -> String {
    assert!(
        valid_tag_chars(tag_prefix),
        "fault tag prefix {tag_prefix:?} must be ASCII letters, digits, '-', '_' or '.'"
    );
    let name = format!("lifeboat-{tag_prefix}");
    let pattern = shell_quote(&format!("--comment \"?{}", regex_escape(&name)));
    format!(
        "for d in /run /tmp; do
  for f in \"$d\"/{name}*.clock \"$d\"/{name}*.sync; do
    [ -e \"$f\" ] || continue
    b=\"${{f%.*}}\"
{RESTORE_CLOCK_AT_B}
  done
done
(
  # The rules are split into words below on purpose (lifeboat's comments hold no
  # spaces); no globbing of them.
  set -f
  for ipt in iptables ip6tables; do
    command -v \"$ipt\" >/dev/null 2>&1 || continue
    for chain in INPUT OUTPUT FORWARD; do
      \"$ipt\" -w -S \"$chain\" 2>/dev/null | grep -E -e {pattern} | tr -d '\"' | while read -r rule; do
        \"$ipt\" -w -D ${{rule#-A }} 2>/dev/null || true
      done
    done
  done
)
for d in /run /tmp; do
  for f in \"$d\"/{name}*.pid; do
    [ -f \"$f\" ] || continue
{KILL_SWITCH_AT_F}
  done
done
left=0
for ipt in iptables ip6tables; do
  command -v \"$ipt\" >/dev/null 2>&1 || continue
  if \"$ipt\" -w -S 2>/dev/null | grep -qE -e {pattern}; then
    echo \"lifeboat: $ipt rules commented {name}* are still in place\" >&2; left=1
  fi
done
for f in /run/{name}*.clock /tmp/{name}*.clock; do
  if [ -e \"$f\" ]; then echo \"lifeboat: the clock step $f is still in place\" >&2; left=1; fi
done
exit $left"
    )
}

/// `docker <verb> <containers…>`, the names quoted.
///
/// # Panics
/// If `containers` is empty.
pub fn process(verb: ProcessVerb, containers: &[String]) -> String {
    assert!(
        !containers.is_empty(),
        "docker {} needs a container",
        verb.as_str()
    );
    let names: Vec<String> = containers.iter().map(|c| shell_quote(c)).collect();
    format!("docker {} {}", verb.as_str(), names.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// `sh -n`: the script parses.
    fn parses(script: &str) {
        let out = Command::new("sh")
            .args(["-n", "-c", script])
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "does not parse: {}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The switch's own script, as `sh -c` receives it.
    fn switch_script(apply: &str) -> String {
        let start = apply.find("setsid nohup sh -c '").expect("a switch") + 19;
        let quoted = &apply[start..apply[start..].find(" \"$pidf\"").unwrap() + start];
        let out = Command::new("sh")
            .args(["-c", &format!("printf %s {quoted}")])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn cut_rules_carry_the_tag_and_the_direction() {
        let a = cut(
            "run7-cut-1",
            "10.0.0.3",
            Direction::Outbound,
            Duration::from_secs(90),
        );
        assert!(a.apply.contains(
            "iptables -w -I OUTPUT -d '10.0.0.3' -m comment --comment 'lifeboat-run7-cut-1' -j DROP"
        ));
        assert!(a.apply.contains("iptables -w -I FORWARD -d '10.0.0.3'"));
        assert!(!a.apply.contains("INPUT"));
        assert!(a.heal.contains(
            "while iptables -w -D OUTPUT -d '10.0.0.3' -m comment --comment 'lifeboat-run7-cut-1' -j DROP 2>/dev/null; do :; done"
        ));
        let switch = switch_script(&a.apply);
        assert!(switch.contains("sleep 90\n"), "{switch}");
        assert!(switch.contains("while iptables -w -D OUTPUT -d '10.0.0.3'"));
        // The switch is armed before the first rule goes in.
        assert!(a.apply.find("setsid nohup").unwrap() < a.apply.find("-I OUTPUT").unwrap());

        let i = cut("t", "10.0.0.3", Direction::Inbound, Duration::from_secs(5));
        assert!(i.apply.contains("-I INPUT -s '10.0.0.3'") && i.apply.contains("-I FORWARD -s"));
        assert!(!i.apply.contains("OUTPUT"));
        let b = cut("t", "10.0.0.3", Direction::Both, Duration::from_secs(5));
        assert_eq!(b.apply.matches(" -w -I ").count(), 4);
        assert_eq!(b.heal.matches(" -w -D ").count(), 4);

        let v6 = cut(
            "t",
            "2a01:4f8::1",
            Direction::Both,
            Duration::from_millis(1500),
        );
        assert!(v6.apply.contains("ip6tables -w -I INPUT -s '2a01:4f8::1'"));
        assert!(switch_script(&v6.apply).contains("sleep 2\n"), "rounded up");
        for s in [&a.apply, &a.heal, &i.apply, &b.heal, &v6.apply, &v6.heal] {
            parses(s);
        }
        parses(&switch_script(&a.apply));
    }

    #[test]
    fn hostile_peers_stay_one_word() {
        let a = cut(
            "t",
            "1.2.3.4'; reboot; '",
            Direction::Both,
            Duration::from_secs(5),
        );
        assert!(a.apply.contains("-s '1.2.3.4'\\''; reboot; '\\'''"));
        parses(&a.apply);
    }

    #[test]
    #[should_panic(expected = "fault tag")]
    fn tags_with_spaces_are_refused() {
        cut("a b", "10.0.0.1", Direction::Both, Duration::from_secs(1));
    }

    #[test]
    fn clock_step_strings() {
        let a = clock_step("run7-clock-2", -1500, Duration::from_secs(120));
        assert!(a.apply.contains("timedatectl set-ntp false"));
        assert!(a.apply.contains("systemctl stop \"$svc\""));
        assert!(a
            .apply
            .contains("ms=$(( $(date +%s%N) / 1000000 + (-1500) ))"));
        assert!(a.apply.contains("echo -1500 > \"$b.clock\""));
        assert!(a.apply.contains("/run/lifeboat-run7-clock-2.clock"));
        let switch = switch_script(&a.apply);
        assert!(switch.contains("sleep 120\n"));
        assert!(switch.contains("timedatectl set-ntp true"));
        // Armed before time sync stops or the clock moves.
        assert!(a.apply.find("setsid nohup").unwrap() < a.apply.find("set-ntp false").unwrap());
        assert!(a.heal.contains("lifeboat-run7-clock-2"));
        for s in [&a.apply, &a.heal, &switch] {
            parses(s);
        }
    }

    #[test]
    fn heal_all_and_process_strings() {
        let h = heal_all("run7");
        assert!(h.contains("'--comment \"?lifeboat-run7'"));
        assert!(h.contains("\"$d\"/lifeboat-run7*.pid"));
        parses(&h);
        assert!(heal_all("r.1").contains("lifeboat-r\\.1"));
        parses(&heal_all(""));
        assert_eq!(
            process(ProcessVerb::Pause, &["ot-a".into(), "it's".into()]),
            "docker pause 'ot-a' 'it'\\''s'"
        );
    }

    /// Runs a clock step, its heal and its dead-man's switch against stand-ins for
    /// `date`, `timedatectl` and `systemctl` on PATH: the host's clock is never touched.
    #[test]
    fn clock_step_runs_against_stand_ins() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let log = dir.path().join("log");
        std::fs::create_dir(&bin).unwrap();
        let stand_in = |name: &str, body: &str| {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        let l = log.display();
        stand_in(
            "date",
            &format!(
                "case \"$1\" in +%s%N) echo 1700000000123456789 ;; -s) echo \"date -s $2\" >> {l} ;; esac"
            ),
        );
        stand_in(
            "timedatectl",
            &format!("case \"$1\" in show) echo yes ;; *) echo \"timedatectl $*\" >> {l} ;; esac"),
        );
        stand_in(
            "systemctl",
            &format!(
                "case \"$1\" in is-active) [ \"$3\" = chrony ] ;; *) echo \"systemctl $*\" >> {l} ;; esac"
            ),
        );
        let run = |script: &str| {
            let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
            let out = Command::new("sh")
                .args(["-c", script])
                .env("PATH", path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}\n{script}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        let tag = format!("unit-{}", std::process::id());

        // apply, then heal (twice: the second changes nothing)
        let a = clock_step(&tag, -1500, Duration::from_secs(60));
        run(&a.apply);
        assert_eq!(
            read_log(),
            "timedatectl set-ntp false\nsystemctl stop chrony\ndate -s @1699999998.623\n"
        );
        run(&a.heal);
        run(&a.heal);
        assert_eq!(
            read_log(),
            "timedatectl set-ntp false\nsystemctl stop chrony\ndate -s @1699999998.623\n\
             date -s @1700000001.623\ntimedatectl set-ntp true\nsystemctl start chrony\n"
        );
        for d in ["/run", "/tmp"] {
            for ext in ["pid", "clock", "sync"] {
                let f = format!("{d}/lifeboat-{tag}.{ext}");
                assert!(!Path::new(&f).exists(), "{f} left behind");
            }
        }

        // apply, then let the switch fire
        std::fs::remove_file(&log).unwrap();
        let a = clock_step(&tag, 250, Duration::from_secs(1));
        run(&a.apply);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while read_log().lines().count() < 6 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            read_log(),
            "timedatectl set-ntp false\nsystemctl stop chrony\ndate -s @1700000000.373\n\
             date -s @1699999999.873\ntimedatectl set-ntp true\nsystemctl start chrony\n"
        );
        run(&a.heal);
        assert_eq!(
            read_log().lines().count(),
            6,
            "heal after the switch: nothing"
        );
        run(&heal_all(&tag));
    }
}
