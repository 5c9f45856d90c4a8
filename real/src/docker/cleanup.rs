//! Removing what runs created: one run's resources at its teardown (also after a failure
//! or Ctrl-C), or every leftover of earlier runs (`lifeboat cleanup --backend docker`).
//!
//! Containers and networks are found by label (`lifeboat.run=<id>` for one run,
//! `lifeboat=1` for all); images by the run label (any run's when no run is named), and
//! with `all` also the shared base images (label `lifeboat.cache`).

use super::images::{filters, CACHE_LABEL, RUN_LABEL};
use anyhow::Context;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, ListNetworksOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
};
use bollard::Docker;
use std::collections::HashMap;

/// What is left of a run (or of all runs): containers, networks and images, by name.
pub async fn leftovers(docker: &Docker, run: Option<&str>) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let f = filters(run);
    let containers = run_containers(docker, &f).await?;
    for c in containers {
        let name = c.names.and_then(|n| n.first().cloned()).unwrap_or_default();
        out.push(format!("container {}", name.trim_start_matches('/')));
    }
    let networks = run_networks(docker, &f).await?;
    for n in networks {
        out.push(format!("network {}", n.name.unwrap_or_default()));
    }
    for img in run_images(docker, run).await? {
        out.push(format!("image {}", img.1));
    }
    Ok(out)
}

/// The containers matching `filters` (a run's, or every run's), stopped ones too.
async fn run_containers(
    docker: &Docker,
    filters: &HashMap<String, Vec<String>>,
) -> anyhow::Result<Vec<bollard::models::ContainerSummary>> {
    docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(filters)
                .build(),
        ))
        .await
        .context("listing containers")
}

/// The networks matching `filters`.
async fn run_networks(
    docker: &Docker,
    filters: &HashMap<String, Vec<String>>,
) -> anyhow::Result<Vec<bollard::models::Network>> {
    docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(filters)
                .build(),
        ))
        .await
        .context("listing networks")
}

/// (id, name) of images of one run, or of every run.
async fn run_images(docker: &Docker, run: Option<&str>) -> anyhow::Result<Vec<(String, String)>> {
    let label = match run {
        Some(r) => format!("{RUN_LABEL}={r}"),
        None => RUN_LABEL.to_string(),
    };
    images_with(docker, label).await
}

async fn images_with(docker: &Docker, label: String) -> anyhow::Result<Vec<(String, String)>> {
    let f = HashMap::from([("label".to_string(), vec![label])]);
    let list = docker
        .list_images(Some(
            ListImagesOptionsBuilder::default().filters(&f).build(),
        ))
        .await
        .context("listing images")?;
    Ok(list
        .into_iter()
        .map(|i| {
            let name = i.repo_tags.first().cloned().unwrap_or_else(|| i.id.clone());
            (i.id, name)
        })
        .collect())
}

/// Removes a run's resources (or every run's), and with `all` the shared base images
/// too; returns what could not be removed (empty when everything went).
pub async fn remove(docker: &Docker, run: Option<&str>, all: bool) -> anyhow::Result<Vec<String>> {
    let f = filters(run);
    let containers = run_containers(docker, &f).await?;
    for c in containers {
        if let Some(id) = c.id {
            let opts = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            let _ = docker.remove_container(&id, Some(opts)).await;
        }
    }
    let networks = run_networks(docker, &f).await?;
    for n in networks {
        if let Some(id) = n.id {
            let _ = docker.remove_network(&id).await;
        }
    }
    let mut images = run_images(docker, run).await?;
    if all {
        images.extend(images_with(docker, CACHE_LABEL.to_string()).await?);
    }
    for (id, _) in images {
        let opts = RemoveImageOptionsBuilder::default().force(true).build();
        let _ = docker.remove_image(&id, Some(opts), None).await;
    }
    leftovers(docker, run).await
}
