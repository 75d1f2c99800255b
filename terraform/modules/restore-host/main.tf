# A scratch host to restore a region's backups into (RB-DR-006): one EC2 instance
# in the region's network, tagged like the hosts the region's launch templates
# start, so inventories and the lab find it the same way (group role_restore,
# region_<region>, zone_<zone>). It lives for one run and is destroyed after it.

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
# aws_instance.this) rather than retagging one that holds another run's restore.
resource "terraform_data" "run" {
  input = var.run_id
}

resource "aws_instance" "this" {
  ami                    = var.ami_id
  instance_type          = var.instance_type
  subnet_id              = var.subnet_id
  availability_zone      = var.zone
  vpc_security_group_ids = var.security_group_ids

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
  }

  tags        = local.tags
  volume_tags = local.tags

  lifecycle {
    replace_triggered_by = [terraform_data.run]
  }
}
