# Module logic, planned against a mocked provider (no cloud, seconds).

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = {
      name = "eu-west-1"
    }
  }
  mock_data "aws_ssm_parameters_by_path" {
    defaults = {
      names  = []
      values = []
      types  = []
    }
  }
}

variables {
  name          = "eu-west"
  estate        = "lab"
  role          = "hot-standby"
  vpc_cidr      = "10.20.0.0/16"
  zones         = ["eu-west-1a", "eu-west-1b"]
  capacity      = { db = 1, app = 1 }
  ami_id        = "ami-785db401"
  allowed_cidrs = ["10.10.0.0/16", "10.20.0.0/16", "10.30.0.0/16", "10.77.0.0/24"]
  db_password   = "correct-horse-battery-staple"
  app_secret    = "0123456789abcdef0123456789abcdef"
}

run "subnets_are_derived_per_zone" {
  command = plan

  assert {
    condition     = aws_subnet.this["eu-west-1a"].cidr_block == "10.20.1.0/24"
    error_message = "zone a must get 10.20.1.0/24"
  }
  assert {
    condition     = aws_subnet.this["eu-west-1b"].cidr_block == "10.20.2.0/24"
    error_message = "zone b must get 10.20.2.0/24"
  }
  assert {
    condition     = aws_subnet.this["eu-west-1b"].availability_zone == "eu-west-1b"
    error_message = "each subnet must sit in its own zone"
  }
  assert {
    condition     = length(aws_subnet.this) == 2
    error_message = "one subnet per zone"
  }
}

run "subnets_follow_a_smaller_vpc" {
  command = plan

  variables {
    vpc_cidr = "10.20.16.0/20"
    zones    = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
  }

  assert {
    condition     = output.subnet_cidrs == { "eu-west-1a" = "10.20.17.0/24", "eu-west-1b" = "10.20.18.0/24", "eu-west-1c" = "10.20.19.0/24" }
    error_message = "subnets must be the n-th /24 of the VPC, n from 1"
  }
}

run "capacity_flows_to_the_groups" {
  command = plan

  variables {
    capacity = { db = 1, app = 3 }
  }

  assert {
    condition     = aws_autoscaling_group.this["app-eu-west-1a"].desired_capacity == 2 && aws_autoscaling_group.this["app-eu-west-1b"].desired_capacity == 1
    error_message = "app capacity 3 over 2 zones must be 2 in zone a, 1 in zone b"
  }
  assert {
    condition     = aws_autoscaling_group.this["db-eu-west-1a"].desired_capacity == 1 && aws_autoscaling_group.this["db-eu-west-1b"].desired_capacity == 0
    error_message = "a single db host must be in the first zone"
  }
  assert {
    condition     = alltrue([for g in aws_autoscaling_group.this : g.min_size == g.desired_capacity && g.max_size == g.desired_capacity])
    error_message = "every group must run exactly its capacity (min = max = desired)"
  }
  assert {
    condition     = output.capacity == { db = 1, app = 3 }
    error_message = "capacity output must be the total per role"
  }
  assert {
    condition     = alltrue([for g in aws_autoscaling_group.this : g.wait_for_capacity_timeout == "0"])
    error_message = "apply must not wait for capacity"
  }
  assert {
    condition     = output.asg_names == { app = ["lab-eu-west-app-eu-west-1a", "lab-eu-west-app-eu-west-1b"], db = ["lab-eu-west-db-eu-west-1a", "lab-eu-west-db-eu-west-1b"] }
    error_message = "groups are named <estate>-<region>-<role>-<zone>"
  }
}

run "capacity_spreads_over_three_zones" {
  command = plan

  variables {
    zones    = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    capacity = { db = 2, app = 7 }
  }

  assert {
    condition     = output.capacity_by_zone == { db = { "eu-west-1a" = 1, "eu-west-1b" = 1, "eu-west-1c" = 0 }, app = { "eu-west-1a" = 3, "eu-west-1b" = 2, "eu-west-1c" = 2 } }
    error_message = "capacity must be spread evenly, remainder to the first zones"
  }
}

run "a_warm_standby_may_scale_to_zero" {
  command = plan

  variables {
    role     = "warm-standby"
    capacity = { db = 0, app = 0 }
  }

  assert {
    condition     = alltrue([for g in aws_autoscaling_group.this : g.desired_capacity == 0])
    error_message = "capacity 0 must be allowed for a warm standby"
  }
}

run "instances_carry_the_selection_tags" {
  command = plan

  assert {
    condition = alltrue([
      for role in ["db", "app"] : anytrue([
        for ts in aws_launch_template.this[role].tag_specifications :
        ts.resource_type == "instance" && ts.tags["Role"] == role && ts.tags["DrRegion"] == "eu-west" && ts.tags["Estate"] == "lab" && ts.tags["Name"] == "lab-eu-west-${role}"
      ])
    ])
    error_message = "launch templates must tag instances with Name, Role, DrRegion, Estate"
  }
}

run "security_group_opens_the_service_ports_to_the_estate_only" {
  command = plan

  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.hosts) == 16
    error_message = "4 ports (ssh, PostgreSQL, app, pgBackRest TLS) x 4 CIDRs"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.hosts["postgres-10.10.0.0/16"].from_port == 5432
    error_message = "PostgreSQL must be open to the primary's VPC"
  }
}

run "secrets_are_named_and_never_output" {
  command = plan

  assert {
    condition     = aws_secretsmanager_secret.this["db"].name == "drkit/lab/eu-west/db-credentials" && aws_secretsmanager_secret.this["app"].name == "drkit/lab/eu-west/app-secret"
    error_message = "secrets are named drkit/<estate>/<region>/<secret>"
  }
  assert {
    condition     = output.secret_names == { db = "drkit/lab/eu-west/db-credentials", app = "drkit/lab/eu-west/app-secret" }
    error_message = "secret names must be output"
  }
  assert {
    condition     = aws_secretsmanager_secret_version.db.secret_string_wo_version == 1
    error_message = "secret values are write-only, versioned by secret_version"
  }
}

run "backup_bucket_defaults" {
  command = plan

  assert {
    condition     = aws_s3_bucket.backups.bucket == "lab-eu-west-backups"
    error_message = "bucket defaults to <estate>-<region>-backups"
  }
  assert {
    condition     = aws_s3_bucket_versioning.backups.versioning_configuration[0].status == "Enabled"
    error_message = "backup bucket must be versioned"
  }
  assert {
    condition     = aws_s3_bucket.backups.force_destroy == false
    error_message = "backups must survive a destroy unless asked"
  }
}

run "no_restore_host_unless_asked" {
  command = plan

  assert {
    condition     = length(module.restore_host) == 0 && output.restore_host == null
    error_message = "a region has no restore host by default"
  }
}

run "a_restore_host_goes_to_the_first_zone_by_default" {
  command = plan

  variables {
    restore_host = { run_id = "20250101T120000Z-RB-DR-006" }
  }

  assert {
    condition     = length(module.restore_host) == 1 && output.restore_host.zone == "eu-west-1a"
    error_message = "without a zone, the restore host goes to the first zone"
  }
  assert {
    condition     = output.restore_host.name == "lab-eu-west-restore" && output.restore_host.run_id == "20250101T120000Z-RB-DR-006"
    error_message = "the restore host is named <estate>-<region>-restore and carries its run id"
  }
}

run "a_restore_host_goes_to_the_asked_zone" {
  command = plan

  variables {
    restore_host = { run_id = "20250101T120000Z-RB-DR-006", zone = "eu-west-1b" }
  }

  assert {
    condition     = output.restore_host.zone == "eu-west-1b"
    error_message = "the restore host goes to the asked zone"
  }
  assert {
    condition     = length(aws_autoscaling_group.this) == 4 && output.capacity == { db = 1, app = 1 }
    error_message = "a restore host changes nothing in the region's groups"
  }
}

# ---------------------------------------------------------------- rejected inputs

run "rejects_an_unknown_role" {
  command = plan

  variables {
    role = "secondary"
  }

  expect_failures = [var.role]
}

run "rejects_negative_capacity" {
  command = plan

  variables {
    capacity = { db = 1, app = -1 }
  }

  expect_failures = [var.capacity]
}

run "rejects_fractional_capacity" {
  command = plan

  variables {
    capacity = { db = 1.5, app = 1 }
  }

  expect_failures = [var.capacity]
}

run "rejects_a_malformed_zone" {
  command = plan

  variables {
    zones = ["eu-west-1a", "westeurope"]
  }

  expect_failures = [var.zones]
}

run "rejects_a_vpc_cidr_with_host_bits" {
  command = plan

  variables {
    vpc_cidr = "10.20.1.0/16"
  }

  expect_failures = [var.vpc_cidr]
}

run "rejects_ssh_from_the_world" {
  command = plan

  variables {
    allowed_cidrs = ["0.0.0.0/0"]
  }

  expect_failures = [var.allowed_cidrs]
}

run "rejects_a_zone_outside_the_region" {
  command = plan

  variables {
    zones = ["eu-west-1a", "us-east-1b"]
  }

  expect_failures = [aws_vpc.this]
}

run "rejects_a_primary_without_a_database" {
  command = plan

  variables {
    role     = "primary"
    capacity = { db = 0, app = 2 }
  }

  expect_failures = [aws_vpc.this]
}

run "rejects_more_database_hosts_than_zones" {
  command = plan

  variables {
    capacity = { db = 3, app = 1 }
  }

  expect_failures = [aws_vpc.this]
}

run "rejects_a_restore_host_outside_the_zones" {
  command = plan

  variables {
    restore_host = { run_id = "20250101T120000Z-RB-DR-006", zone = "eu-west-1c" }
  }

  expect_failures = [aws_vpc.this]
}

run "a_shifted_zone_runs_no_app_host_and_the_others_take_its_capacity" {
  command = plan

  variables {
    zones     = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    capacity  = { db = 1, app = 3 }
    zones_out = ["eu-west-1a"]
  }

  assert {
    condition     = output.capacity_by_zone.app == { "eu-west-1a" = 0, "eu-west-1b" = 2, "eu-west-1c" = 1 }
    error_message = "app capacity 3 must go to the zones left in (2 + 1), none to the shifted zone"
  }
  assert {
    condition     = output.capacity_by_zone.db == { "eu-west-1a" = 1, "eu-west-1b" = 0, "eu-west-1c" = 0 }
    error_message = "database groups must not move with a zone shift"
  }
  assert {
    condition     = length(aws_subnet.this) == 3
    error_message = "the shifted zone keeps its subnet (it comes back with --restore)"
  }
}

run "a_zone_shift_recorded_in_parameter_store_holds_on_every_apply" {
  command = plan

  # RB-DR-002 records /drkit/<estate>/zone-shifts/<zone>; an apply that passes no
  # zones_out (a region failover's, the baseline's) must keep the shift.
  override_data {
    target = data.aws_ssm_parameters_by_path.zone_shifts
    values = {
      names  = ["/drkit/lab/zone-shifts/eu-west-1b"]
      values = ["shifted away by drkit run 20261204T093202Z-RB-DR-002"]
      types  = ["String"]
    }
  }

  variables {
    capacity = { db = 1, app = 2 }
  }

  assert {
    condition     = output.capacity_by_zone.app == { "eu-west-1a" = 2, "eu-west-1b" = 0 }
    error_message = "a recorded shift of eu-west-1b must put its app capacity in eu-west-1a"
  }
  assert {
    condition     = output.capacity_by_zone.db == { "eu-west-1a" = 1, "eu-west-1b" = 0 }
    error_message = "database groups must not move with a recorded zone shift"
  }
}

run "a_zone_shift_must_leave_a_zone_in" {
  command = plan

  variables {
    zones_out = ["eu-west-1a", "eu-west-1b"]
  }

  expect_failures = [var.zones_out]
}

run "a_zone_shift_names_the_regions_zones" {
  command = plan

  variables {
    zones_out = ["us-east-1a"]
  }

  expect_failures = [var.zones_out]
}
