//! `lifeboat serve telegram|releases|hetzner`: run a local double of an outside service.
//!
//! Rehearsals and tests point lifeboat's real clients at these doubles instead of
//! api.telegram.org, api.github.com or api.hetzner.cloud: same HTTP, same JSON, no account,
//! no cost. The double runs in the foreground until Ctrl-C; its state lives in memory.

use anyhow::Context;
use clap::{Args, Subcommand};
use lifeboat_real::clients::mask_secret;
use lifeboat_real::doubles::{
    hetzner, releases, telegram, HetznerDouble, ReleasesDouble, ServerTask, TelegramDouble,
};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

/// Arguments of `lifeboat serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The service to stand in for.
    #[command(subcommand)]
    pub service: ServeService,
}

/// The service `lifeboat serve` stands in for.
#[derive(Subcommand, Debug)]
pub enum ServeService {
    /// The Telegram Bot API (getMe, getUpdates long polls, sendMessage), plus /inject/…
    /// endpoints to send the bot a message, read its replies and inject faults.
    Telegram(TelegramArgs),
    /// GitHub Releases (releases by tag, asset upload and download), in memory.
    Releases(ReleasesArgs),
    /// The Hetzner Cloud API (servers, SSH keys, server types with prices), in memory.
    Hetzner(HetznerArgs),
}

/// Arguments of `lifeboat serve telegram`.
#[derive(Args, Debug)]
pub struct TelegramArgs {
    /// The address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// The environment variable holding the bot token the double accepts (for example
    /// TELEGRAM_BOT_TOKEN). Without it, a fixed test token is used.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
}

/// Arguments of `lifeboat serve releases`.
#[derive(Args, Debug)]
pub struct ReleasesArgs {
    /// The address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8082")]
    pub listen: SocketAddr,
    /// The environment variable holding the token the double accepts (for example
    /// GITHUB_TOKEN). Without it, a fixed test token is used.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
}

/// Arguments of `lifeboat serve hetzner`.
#[derive(Args, Debug)]
pub struct HetznerArgs {
    /// The address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8083")]
    pub listen: SocketAddr,
    /// The environment variable holding the API token the double accepts (for example
    /// HCLOUD_TOKEN). Without it, a fixed test token is used.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// The public IPv4 address new servers report (a loopback sshd for SSH rehearsals).
    #[arg(long, default_value = "127.0.0.1")]
    pub server_ip: IpAddr,
}

/// The token to accept, and a line saying where it came from (the token itself masked).
fn resolve_token(
    token_env: Option<&str>,
    test_token: &str,
    constant: &str,
) -> anyhow::Result<(String, String)> {
    match token_env {
        None => Ok((
            test_token.to_string(),
            format!(
                "{} (the built-in test token, {constant})",
                mask_secret(test_token)
            ),
        )),
        Some(var) => {
            let value = std::env::var(var).with_context(|| {
                format!("--token-env {var}: {var} is not set (leave --token-env out to use the built-in test token)")
            })?;
            let value = value.trim().to_string();
            anyhow::ensure!(!value.is_empty(), "--token-env {var}: {var} is empty");
            let shown = format!("{} (from ${var})", mask_secret(&value));
            Ok((value, shown))
        }
    }
}

/// Runs `lifeboat serve …`.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(args.service))
}

async fn serve(service: ServeService) -> anyhow::Result<ExitCode> {
    let task = match service {
        ServeService::Telegram(a) => {
            let (token, shown) = resolve_token(
                a.token_env.as_deref(),
                telegram::TEST_TOKEN,
                "lifeboat_real::doubles::telegram::TEST_TOKEN",
            )?;
            let (addr, task) = TelegramDouble::new(token).serve(a.listen).await?;
            println!("Telegram Bot API double listening on http://{addr}");
            println!("  token:   {shown}");
            println!("  clients: base URL http://{addr} instead of https://api.telegram.org");
            println!("           (calls go to http://{addr}/bot<token>/getUpdates, …)");
            println!(
                "  inject:  curl -X POST http://{addr}/inject/message \
                 -H 'content-type: application/json' -d '{{\"chat_id\": 1, \"text\": \"/status\"}}'"
            );
            println!("  replies: curl http://{addr}/inject/replies");
            println!(
                "  faults:  POST http://{addr}/inject/fault {{\"code\": 502}}, \
                 DELETE http://{addr}/inject/fault"
            );
            task
        }
        ServeService::Releases(a) => {
            let (token, shown) = resolve_token(
                a.token_env.as_deref(),
                releases::TEST_TOKEN,
                "lifeboat_real::doubles::releases::TEST_TOKEN",
            )?;
            let (addr, task) = ReleasesDouble::new(token).serve(a.listen).await?;
            println!("GitHub Releases double listening on http://{addr}");
            println!("  token:   {shown}, sent as Authorization: Bearer <token>");
            println!(
                "  clients: API base and uploads base http://{addr} instead of \
                 https://api.github.com and https://uploads.github.com"
            );
            println!("           (any owner/repo: http://{addr}/repos/<owner>/<repo>/releases)");
            task
        }
        ServeService::Hetzner(a) => {
            let (token, shown) = resolve_token(
                a.token_env.as_deref(),
                hetzner::TEST_TOKEN,
                "lifeboat_real::doubles::hetzner::TEST_TOKEN",
            )?;
            let double = HetznerDouble::new(token);
            double.set_server_ip(a.server_ip);
            let (addr, task) = double.serve(a.listen).await?;
            println!("Hetzner Cloud API double listening on http://{addr}/v1");
            println!("  token:   {shown}, sent as Authorization: Bearer <token>");
            println!(
                "  clients: API base http://{addr}/v1 instead of https://api.hetzner.cloud/v1"
            );
            println!(
                "  servers: new servers report the IPv4 address {}",
                a.server_ip
            );
            task
        }
    };
    println!("Ctrl-C stops it.");
    wait(task).await
}

/// Waits for Ctrl-C (a clean stop) or for the server to fail.
async fn wait(mut task: ServerTask) -> anyhow::Result<ExitCode> {
    tokio::select! {
        signal = tokio::signal::ctrl_c() => {
            signal.context("listening for Ctrl-C")?;
            task.abort();
            println!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        ended = &mut task => {
            ended.context("the server task")?.context("serving")?;
            anyhow::bail!("the server stopped by itself")
        }
    }
}
