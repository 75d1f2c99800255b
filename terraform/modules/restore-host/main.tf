# A scratch host to restore a region's backups into (RB-DR-006): one EC2 instance
# in the region's network, tagged like the hosts the region's launch templates
# start, so inventories and the lab find it the same way (group role_restore,
# region_<region>, zone_<zone>). It lives for one run and is destroyed after it.
#
# The instance is an auto scaling group of one, like the region's hosts, so that
# Terraform returns as soon as the group exists and is gone, where an
# aws_instance waits for the instance to run and to terminate (the AWS provider
# polls after a fixed 10 s each way: ~20 s of a scratch restore's ~90). The
# restore playbook waits for the host to answer over ssh, which it had to
# anyway; deleting the group terminates the instance (force_delete: nothing on
# a scratch host is worth draining).

locals {
  name = "${var.estate}-${var.dr_region}-restore"

  # The selection tags of modules/region's launch templates (Name, Role, Estate,
  # DrRegion), plus the run that owns the host.
  tags = merge(var.tags, {
    Name       = local.name
    Role       = "restore"
    Estate     = var.estate
    DrRegion   = var.dr_region
    RestoreRun = var.run_id
  })
}

# The run the host belongs to. A new run id replaces the host (see
# aws_autoscaling_group.this) rather than retagging one that holds another run's
# restore.
resource "terraform_data" "run" {
  input = var.run_id
}

# Both the template and the group get a unique name (name_prefix): one left
# behind (a run stopped between creates, or a create whose answer was lost and
# then retried) must not block every later restore with "already in use". The
# host's Name tag stays <estate>-<region>-restore.
resource "aws_launch_template" "this" {
  name_prefix            = "${local.name}-"
  description            = "drkit ${var.estate} ${var.dr_region} scratch restore host"
  image_id               = var.ami_id
  instance_type          = var.instance_type
  vpc_security_group_ids = var.security_group_ids
  update_default_version = true

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
  }

  tag_specifications {
    resource_type = "instance"
    tags          = local.tags
  }

  tag_specifications {
    resource_type = "volume"
    tags          = local.tags
  }

  # No tags on the template itself (as in modules/region: moto echoes them back
  # as a "launch-template" tag specification, a diff on every plan).

  lifecycle {
    replace_triggered_by = [terraform_data.run]
  }
}

resource "aws_autoscaling_group" "this" {
  name_prefix         = "${local.name}-"
  vpc_zone_identifier = [var.subnet_id]
  min_size            = 1
  max_size            = 1
  desired_capacity    = 1
  health_check_type   = "EC2"

  # Terraform returns once the group exists; the restore playbook waits for the
  # host itself (over ssh).
  wait_for_capacity_timeout = "0"
  # Deleting the group terminates its instance without draining it first.
  force_delete = true

  launch_template {
    id      = aws_launch_template.this.id
    version = aws_launch_template.this.latest_version
  }

  # The instance takes its tags from the launch template; these tag the group.
  dynamic "tag" {
    for_each = local.tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = false
    }
  }

  lifecycle {
    replace_triggered_by = [terraform_data.run]
  }
}

# The instance the group launched, for the outputs: found by its run's tags once
# the group exists (none yet when AWS has not launched it by then).
data "aws_instances" "this" {
  instance_tags = {
    Role       = "restore"
    DrRegion   = var.dr_region
    RestoreRun = var.run_id
  }
  instance_state_names = ["pending", "running"]

  depends_on = [aws_autoscaling_group.this]
}
