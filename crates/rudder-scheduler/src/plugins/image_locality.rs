//! ImageLocality: prefers nodes that already have the pod's images,
//! weighted by image size and by how many nodes have them (so that one
//! node with every image does not draw every pod).

use crate::framework::{
    ClusterEvent, CycleState, MAX_NODE_SCORE, NodeInfo, PodInfo, PreScore, Score, Snapshot, Status,
};

pub const NAME: &str = "ImageLocality";
const MB: i64 = 1024 * 1024;
/// Below this an image is not worth moving a pod for.
const MIN_THRESHOLD: i64 = 23 * MB;
/// Per container: above this every image scores the same.
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

#[derive(Debug, Default)]
pub struct ImageLocality;

impl crate::framework::Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }
    fn pre_score(&self) -> Option<&dyn PreScore> {
        Some(self)
    }
    fn score(&self) -> Option<&dyn Score> {
        Some(self)
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdd]
    }
}

/// An image reference as node status lists it: `busybox` is
/// `docker.io/library/busybox:latest`.
pub fn normalize(image: &str) -> String {
    let (name, suffix) = match image.find('@') {
        Some(i) => (&image[..i], image[i..].to_string()),
        None => {
            let last = image.rsplit('/').next().unwrap_or(image);
            if last.contains(':') {
                let i = image.rfind(':').unwrap_or(image.len());
                (&image[..i], image[i..].to_string())
            } else {
                (image, ":latest".to_string())
            }
        }
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_domain =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_domain {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    format!("{full}{suffix}")
}

/// The pod's images (normalised) and the total node count, for Score.
#[derive(Debug)]
struct Images {
    images: Vec<(String, usize)>,
    total_nodes: usize,
}

const STATE: &str = "ImageLocality/images";

impl PreScore for ImageLocality {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &dyn Snapshot,
        _: &[&NodeInfo],
    ) -> Status {
        let images: Vec<(String, usize)> = pod
            .spec()
            .into_iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .filter_map(|c| c.image.as_deref())
            .map(normalize)
            .map(|i| {
                let n = snapshot.image_nodes(&i);
                (i, n)
            })
            .collect();
        state.write(
            STATE,
            Images {
                images,
                total_nodes: snapshot.nodes().len(),
            },
        );
        Status::success()
    }
}

impl Score for ImageLocality {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(s) = state.read::<Images>(STATE) else {
            return 0;
        };
        let total = s.total_nodes.max(1) as f64;
        let sum: i64 = s
            .images
            .iter()
            .filter_map(|(i, spread)| {
                node.images
                    .get(i)
                    .map(|size| (*size as f64 * (*spread as f64 / total)) as i64)
            })
            .sum();
        let containers = s.images.len().max(1) as i64;
        let max = MAX_CONTAINER_THRESHOLD * containers;
        let sum = sum.clamp(MIN_THRESHOLD, max);
        MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_are_normalised_like_node_status() {
        assert_eq!(normalize("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalize("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(normalize("me/app"), "docker.io/me/app:latest");
        assert_eq!(normalize("localhost:5000/app:v1"), "localhost:5000/app:v1");
        assert_eq!(
            normalize("registry.k8s.io/pause:3.10"),
            "registry.k8s.io/pause:3.10"
        );
        assert_eq!(
            normalize("localhost/pause@sha256:ab"),
            "localhost/pause@sha256:ab"
        );
    }
}
