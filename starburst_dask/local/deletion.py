"""What ECS refuses to delete, as the local Fargate refuses it: DeleteCluster while the
cluster still holds container instances, services or tasks.

The error codes are DeleteCluster's (ECS API reference, DeleteCluster, Errors); the texts
are AWS's answers as reported verbatim (exact texts are not in the reference). AWS does not
document the order of the checks; reports show the container instances' refusal while
services ran, and the services' refusal while their tasks ran, so they are checked in
that order.
"""

from __future__ import annotations

from typing import Any

from moto.ecs.exceptions import ECSException

#: "You can't delete a cluster that has registered container instances." AWS's answer,
#: reported in aws-samples/aws-scalable-big-blue-button-example#79 and
#: gruntwork-io/cloud-nuke#1131 (HTTP 400).
CONTAINS_CONTAINER_INSTANCES = (
    "The Cluster cannot be deleted while Container Instances are active or draining."
)
#: "You can't delete a cluster that contains services." Reported in
#: coldbrewcloud/coldbrew-cli#35 and aws/amazon-ecs-cli#368 (HTTP 400).
CONTAINS_SERVICES = "The Cluster cannot be deleted while Services are active."
#: "You can't delete a cluster that has active tasks." Reported in
#: gruntwork-io/cloud-nuke#368 (a Fargate task PENDING) and gchq/sleeper#4499 (HTTP 400).
#: A task is active until it is STOPPED: stopping and deprovisioning tasks block too.
CONTAINS_TASKS = "The Cluster cannot be deleted while Tasks are active."


class ClusterContainsContainerInstancesException(ECSException):
    """DeleteCluster of a cluster with registered container instances."""

    def __init__(self) -> None:
        super().__init__(type(self).__name__, CONTAINS_CONTAINER_INSTANCES)


class ClusterContainsServicesException(ECSException):
    """DeleteCluster of a cluster with services that are not deleted."""

    def __init__(self) -> None:
        super().__init__(type(self).__name__, CONTAINS_SERVICES)


class ClusterContainsTasksException(ECSException):
    """DeleteCluster of a cluster with tasks that are not STOPPED."""

    def __init__(self) -> None:
        super().__init__(type(self).__name__, CONTAINS_TASKS)


def check_delete_cluster(backend: Any, cluster: Any) -> None:
    """Refuse DeleteCluster as ECS does while ``cluster`` still holds anything.

    Parameters
    ----------
    backend : moto's ECS backend (its ``container_instances``, ``services``, ``tasks``).
    cluster : the moto cluster to delete.
    """
    if backend.container_instances.get(cluster.name):
        raise ClusterContainsContainerInstancesException()
    if any(
        s.cluster_arn == cluster.arn and s.status != "INACTIVE" for s in backend.services.values()
    ):
        raise ClusterContainsServicesException()
    if any(t.last_status != "STOPPED" for t in list(backend.tasks.get(cluster.name, {}).values())):
        raise ClusterContainsTasksException()
