# Module logic, planned against a mocked provider (no cloud, seconds).

mock_provider "aws" {
  # The group refers to the template by id, which must look like one.
  mock_resource "aws_launch_template" {
    defaults = {
      id             = "lt-0123456789abcdef0"
      latest_version = 1
    }
  }
}

variables {
  estate             = "lab"
  dr_region          = "eu-west"
  run_id             = "20250101T120000Z-RB-DR-006"
  subnet_id          = "subnet-0123456789abcdef0"
  zone               = "eu-west-1b"
  security_group_ids = ["sg-0123456789abcdef0"]
  ami_id             = "ami-785db401"
}

run "the_host_carries_the_selection_tags_and_its_run" {
  command = plan

  assert {
    condition = aws_launch_template.this.tag_specifications[0].tags == tomap({
      Name       = "lab-eu-west-restore"
      Role       = "restore"
      Estate     = "lab"
      DrRegion   = "eu-west"
      RestoreRun = "20250101T120000Z-RB-DR-006"
    }) && aws_launch_template.this.tag_specifications[0].resource_type == "instance"
    error_message = "the host must be tagged Name=<estate>-<region>-restore, Role=restore, Estate, DrRegion and RestoreRun=<run id>"
  }
  assert {
    condition     = aws_launch_template.this.tag_specifications[1].resource_type == "volume" && aws_launch_template.this.tag_specifications[1].tags == aws_launch_template.this.tag_specifications[0].tags
    error_message = "the host's volumes must carry the host's tags"
  }
  assert {
    condition     = output.name == "lab-eu-west-restore" && output.run_id == "20250101T120000Z-RB-DR-006"
    error_message = "name and run_id outputs must be the Name and RestoreRun tags"
  }
}

run "one_host_in_the_given_subnet_and_zone_that_terraform_does_not_wait_for" {
  command = plan

  assert {
    condition     = aws_autoscaling_group.this.vpc_zone_identifier == toset(["subnet-0123456789abcdef0"]) && output.zone == "eu-west-1b"
    error_message = "the host must sit in the given subnet (and zone)"
  }
  assert {
    condition     = aws_autoscaling_group.this.min_size == 1 && aws_autoscaling_group.this.max_size == 1 && aws_autoscaling_group.this.desired_capacity == 1
    error_message = "the group must hold exactly one host"
  }
  assert {
    condition     = aws_autoscaling_group.this.wait_for_capacity_timeout == "0" && aws_autoscaling_group.this.force_delete
    error_message = "terraform must neither wait for the host to run nor drain it on delete"
  }
  assert {
    condition     = aws_launch_template.this.vpc_security_group_ids == toset(["sg-0123456789abcdef0"])
    error_message = "the host must be in the given security groups only"
  }
  assert {
    condition     = aws_launch_template.this.image_id == "ami-785db401" && aws_launch_template.this.instance_type == "t3.micro"
    error_message = "the host must boot the given AMI, t3.micro unless told"
  }
  assert {
    condition     = aws_launch_template.this.metadata_options[0].http_tokens == "required"
    error_message = "instance metadata must require IMDSv2 tokens, as on the region's hosts"
  }
}

run "extra_tags_do_not_override_the_selection_tags" {
  command = plan

  variables {
    tags = { ManagedBy = "terraform", Role = "db", DrRole = "hot-standby" }
  }

  assert {
    condition     = aws_launch_template.this.tag_specifications[0].tags["Role"] == "restore" && aws_launch_template.this.tag_specifications[0].tags["ManagedBy"] == "terraform" && aws_launch_template.this.tag_specifications[0].tags["DrRole"] == "hot-standby"
    error_message = "caller tags are added, but Role stays restore"
  }
}

run "outputs_name_the_launched_host" {
  command = apply

  override_data {
    target = data.aws_instances.this
    values = {
      ids         = ["i-0123456789abcdef0"]
      private_ips = ["10.20.2.4"]
    }
  }

  assert {
    condition     = output.instance_id == "i-0123456789abcdef0" && output.private_ip == "10.20.2.4"
    error_message = "instance_id and private_ip outputs must be the launched instance's"
  }
  assert {
    condition     = output.run_id == "20250101T120000Z-RB-DR-006"
    error_message = "run_id output must be the RestoreRun tag"
  }
}

run "outputs_are_null_while_the_group_has_not_launched_the_host" {
  command = apply

  override_data {
    target = data.aws_instances.this
    values = {
      ids         = []
      private_ips = []
    }
  }

  assert {
    condition     = output.instance_id == null && output.private_ip == null
    error_message = "instance_id and private_ip must be null until the host exists"
  }
}

# ---------------------------------------------------------------- rejected inputs

run "rejects_an_empty_run_id" {
  command = plan

  variables {
    run_id = ""
  }

  expect_failures = [var.run_id]
}

run "rejects_a_run_id_with_spaces" {
  command = plan

  variables {
    run_id = "restore of tuesday"
  }

  expect_failures = [var.run_id]
}

run "rejects_a_run_id_that_is_not_tag_safe" {
  command = plan

  variables {
    run_id = "run#1;rm"
  }

  expect_failures = [var.run_id]
}

run "rejects_a_run_id_longer_than_128" {
  command = plan

  variables {
    run_id = join("", [for i in range(129) : "a"])
  }

  expect_failures = [var.run_id]
}

run "rejects_a_malformed_zone" {
  command = plan

  variables {
    zone = "westeurope"
  }

  expect_failures = [var.zone]
}

run "rejects_a_subnet_name_for_an_id" {
  command = plan

  variables {
    subnet_id = "lab-eu-west-eu-west-1b"
  }

  expect_failures = [var.subnet_id]
}

run "rejects_no_security_group" {
  command = plan

  variables {
    security_group_ids = []
  }

  expect_failures = [var.security_group_ids]
}

run "rejects_a_malformed_ami" {
  command = plan

  variables {
    ami_id = "ubuntu-22.04"
  }

  expect_failures = [var.ami_id]
}

run "rejects_an_uppercase_region" {
  command = plan

  variables {
    dr_region = "EU-West"
  }

  expect_failures = [var.dr_region]
}
