# One region of a DR estate: network, hosts per role, backup bucket, key and secrets.
#
# The module knows nothing about where it runs: the caller's provider decides the
# cloud region and endpoint (AWS, or the lab's moto server).

data "aws_region" "current" {}

# Zone shifts in force in this region (RB-DR-002); see local.zones_out.
data "aws_ssm_parameters_by_path" "zone_shifts" {
  path      = "/drkit/${var.estate}/zone-shifts"
  recursive = false
}

locals {
  prefix = "${var.estate}-${var.name}"

  # n-th zone (from 1) -> 10.<r>.<n>.0/24 inside a 10.<r>.0.0/16.
  subnet_newbits = 24 - tonumber(split("/", var.vpc_cidr)[1])
  subnet_cidrs   = { for i, zone in var.zones : zone => cidrsubnet(var.vpc_cidr, local.subnet_newbits, i + 1) }

  roles = toset(["db", "app"])

  # "<role>-<zone>" => capacity of that role in that zone: capacity / zones each,
  # the first (capacity % zones) zones one more. App capacity goes to the zones
  # not shifted away (zones_out, RB-DR-002) only; a shifted zone's app groups run
  # nothing, so no app host lands there. Database groups never move with it: the
  # database moves with the runbooks' own steps (promotion, rebuild).
  # A zone is out when the caller says so (zones_out) or when a zone shift is
  # recorded in the region's own Parameter Store (RB-DR-002 writes
  # /drkit/<estate>/zone-shifts/<zone>): every apply, whoever runs it, then keeps
  # the shift, and a region's shift is read from that region alone, so applying
  # one region never needs another to answer.
  zones_shifted = [for n in data.aws_ssm_parameters_by_path.zone_shifts.names : basename(n)]
  zones_out     = distinct(concat(var.zones_out, [for z in var.zones : z if contains(local.zones_shifted, z)]))
  zone_count    = length(var.zones)
  zones_in      = [for z in var.zones : z if !contains(local.zones_out, z)]
  groups = merge([
    for role in local.roles : {
      for i, zone in var.zones : "${role}-${zone}" => {
        role = role
        zone = zone
        capacity = role == "app" ? (
          contains(local.zones_in, zone)
          ? floor(var.capacity[role] / length(local.zones_in)) + (index(local.zones_in, zone) < var.capacity[role] % length(local.zones_in) ? 1 : 0)
          : 0
        ) : floor(var.capacity[role] / local.zone_count) + (i < var.capacity[role] % local.zone_count ? 1 : 0)
      }
    }
  ]...)

  tags = merge(var.tags, {
    Estate   = var.estate
    DrRegion = var.name
    DrRole   = var.role
  })

  backup_bucket_name = coalesce(var.backup_bucket_name, "${local.prefix}-backups")

  # The restore host's zone: the one asked for, else the first (checked on aws_vpc).
  restore_zone = var.restore_host == null ? null : coalesce(var.restore_host.zone, var.zones[0])

  # Secrets are addressed by name from runbooks and roles: drkit/<estate>/<region>/<secret>.
  secret_names = {
    db  = "drkit/${var.estate}/${var.name}/db-credentials"
    app = "drkit/${var.estate}/${var.name}/app-secret"
  }
}

# ---------------------------------------------------------------- network

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = var.enable_dns_hostnames

  tags = merge(local.tags, { Name = local.prefix })

  lifecycle {
    precondition {
      condition     = alltrue([for z in var.zones : startswith(z, data.aws_region.current.name) && length(z) == length(data.aws_region.current.name) + 1])
      error_message = "every zone must be in the provider's region ${data.aws_region.current.name}; got ${join(", ", var.zones)}."
    }
    precondition {
      condition     = var.role == "warm-standby" || var.capacity.db >= 1
      error_message = "a ${var.role} region needs capacity.db >= 1 (it holds the primary database or a streaming replica); only a warm-standby may run without a database host."
    }
    precondition {
      condition     = var.capacity.db <= length(var.zones)
      error_message = "capacity.db is ${var.capacity.db} but the region has ${length(var.zones)} zone(s): at most one database host per zone (drkit names a database node after its zone; list the zones in drkit.regions.${var.name}.db_zones)."
    }
    precondition {
      condition     = local.restore_zone == null ? true : contains(var.zones, local.restore_zone)
      error_message = "restore_host.zone must be one of the region's zones (${join(", ", var.zones)}); got ${coalesce(local.restore_zone, "none")}."
    }
  }
}

resource "aws_subnet" "this" {
  for_each = local.subnet_cidrs

  vpc_id            = aws_vpc.this.id
  availability_zone = each.key
  cidr_block        = each.value

  tags = merge(local.tags, { Name = "${local.prefix}-${each.key}" })
}

resource "aws_security_group" "hosts" {
  name        = "${local.prefix}-hosts"
  description = "drkit ${var.estate} ${var.name}: ssh, PostgreSQL and the app from the estate's networks"
  vpc_id      = aws_vpc.this.id

  tags = merge(local.tags, { Name = "${local.prefix}-hosts" })
}

resource "aws_vpc_security_group_ingress_rule" "hosts" {
  for_each = {
    for pair in setproduct(
      # pgBackRest's TLS server (drkit.backup.tls.port): backups from a standby.
      [{ name = "ssh", port = 22 }, { name = "postgres", port = 5432 }, { name = "app", port = 8080 },
      { name = "pgbackrest", port = 8432 }],
      var.allowed_cidrs,
    ) : "${pair[0].name}-${pair[1]}" => { port = pair[0].port, cidr = pair[1], name = pair[0].name }
  }

  security_group_id = aws_security_group.hosts.id
  description       = "${each.value.name} from ${each.value.cidr}"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr

  tags = local.tags
}

resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.hosts.id
  description       = "all outbound"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"

  tags = local.tags
}

# ---------------------------------------------------------------- hosts

resource "aws_launch_template" "this" {
  for_each = local.roles

  name                   = "${local.prefix}-${each.key}"
  description            = "drkit ${var.estate} ${var.name} ${each.key} hosts"
  image_id               = var.ami_id
  instance_type          = var.instance_type
  vpc_security_group_ids = [aws_security_group.hosts.id]
  update_default_version = true

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
  }

  # The tags inventories and runbooks select hosts by (docs/internals.md, "The lab").
  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${local.prefix}-${each.key}", Role = each.key })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { Name = "${local.prefix}-${each.key}", Role = each.key })
  }

  # No tags on the template itself: moto echoes them back as a "launch-template"
  # tag specification, a diff on every plan, and each apply would cut a new
  # template version (on which moto then fails to scale the group).
}

# One group per role and zone, capacity spread over the zones in order (zone a
# gets the remainder first). Placement is then deterministic: a zone outage takes
# down known hosts, and a region's database hosts are in its first capacity.db
# zones, one per zone (drkit.topology's db_zones name them in the same order).
resource "aws_autoscaling_group" "this" {
  for_each = local.groups

  name                = "${local.prefix}-${each.value.role}-${each.value.zone}"
  vpc_zone_identifier = [aws_subnet.this[each.value.zone].id]
  min_size            = each.value.capacity
  max_size            = each.value.capacity
  desired_capacity    = each.value.capacity

  # Capacity is a fact the runbook verifies itself (hosts reachable over ssh);
  # terraform returns as soon as the group is updated.
  wait_for_capacity_timeout = "0"
  health_check_type         = "EC2"

  launch_template {
    id      = aws_launch_template.this[each.value.role].id
    version = aws_launch_template.this[each.value.role].latest_version
  }

  # Instances take their tags from the launch template; these tag the group itself
  # so tools can find a region's groups by tag.
  dynamic "tag" {
    for_each = merge(local.tags, { Name = "${local.prefix}-${each.value.role}", Role = each.value.role })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = false
    }
  }
}

# ---------------------------------------------------------------- restore host

# Only while a restore drill runs (RB-DR-006). Nothing else in the region refers
# to it, so unsetting restore_host plans the host's destruction and nothing else.
module "restore_host" {
  source = "../restore-host"
  count  = var.restore_host == null ? 0 : 1

  estate             = var.estate
  dr_region          = var.name
  run_id             = var.restore_host.run_id
  zone               = local.restore_zone
  subnet_id          = aws_subnet.this[local.restore_zone].id
  security_group_ids = [aws_security_group.hosts.id]
  ami_id             = var.ami_id
  instance_type      = var.instance_type
  tags               = local.tags
}

# ---------------------------------------------------------------- key, backups

resource "aws_kms_key" "this" {
  description             = "drkit ${var.estate} ${var.name}: backups and secrets"
  deletion_window_in_days = var.kms_deletion_window_days
  enable_key_rotation     = true

  tags = local.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/drkit-${local.prefix}"
  target_key_id = aws_kms_key.this.key_id
}

resource "aws_s3_bucket" "backups" {
  bucket        = local.backup_bucket_name
  force_destroy = var.backup_bucket_force_destroy

  tags = merge(local.tags, { Name = local.backup_bucket_name })
}

resource "aws_s3_bucket_versioning" "backups" {
  bucket = aws_s3_bucket.backups.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "backups" {
  bucket = aws_s3_bucket.backups.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "backups" {
  bucket = aws_s3_bucket.backups.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ---------------------------------------------------------------- secrets

resource "aws_secretsmanager_secret" "this" {
  for_each = local.secret_names

  name                    = each.value
  description             = each.key == "db" ? "drkit ${var.estate} ${var.name}: database credentials (JSON)" : "drkit ${var.estate} ${var.name}: application secret"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.secret_recovery_window_days

  tags = local.tags
}

# Values are write-only: sent when secret_version changes, never stored in state.
resource "aws_secretsmanager_secret_version" "db" {
  secret_id = aws_secretsmanager_secret.this["db"].id
  secret_string_wo = jsonencode({
    engine   = "postgres"
    port     = 5432
    dbname   = var.db_name
    username = var.db_username
    password = var.db_password
  })
  secret_string_wo_version = var.secret_version
}

resource "aws_secretsmanager_secret_version" "app" {
  secret_id                = aws_secretsmanager_secret.this["app"].id
  secret_string_wo         = var.app_secret
  secret_string_wo_version = var.secret_version
}
