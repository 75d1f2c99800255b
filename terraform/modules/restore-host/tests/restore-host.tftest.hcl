# Module logic, planned against a mocked provider (no cloud, seconds).

mock_provider "aws" {}

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
    condition = aws_instance.this.tags == tomap({
      Name       = "lab-eu-west-restore"
      Role       = "restore"
      Estate     = "lab"
      DrRegion   = "eu-west"
      RestoreRun = "20250101T120000Z-RB-DR-006"
    })
    error_message = "the host must be tagged Name=<estate>-<region>-restore, Role=restore, Estate, DrRegion and RestoreRun=<run id>"
  }
  assert {
    condition     = aws_instance.this.volume_tags == aws_instance.this.tags
    error_message = "the host's volumes must carry the host's tags"
  }
  assert {
    condition     = output.name == "lab-eu-west-restore"
    error_message = "name output must be the Name tag"
  }
}

run "the_host_is_placed_in_the_given_subnet_and_zone" {
  command = plan

  assert {
    condition     = aws_instance.this.subnet_id == "subnet-0123456789abcdef0" && aws_instance.this.availability_zone == "eu-west-1b"
    error_message = "the host must sit in the given subnet and zone"
  }
  assert {
    condition     = output.zone == "eu-west-1b"
    error_message = "zone output must be known at plan time"
  }
  assert {
    condition     = aws_instance.this.vpc_security_group_ids == toset(["sg-0123456789abcdef0"])
    error_message = "the host must be in the given security groups only"
  }
  assert {
    condition     = aws_instance.this.ami == "ami-785db401" && aws_instance.this.instance_type == "t3.micro"
    error_message = "the host must boot the given AMI, t3.micro unless told"
  }
  assert {
    condition     = aws_instance.this.metadata_options[0].http_tokens == "required"
    error_message = "instance metadata must require IMDSv2 tokens, as on the region's hosts"
  }
}

run "extra_tags_do_not_override_the_selection_tags" {
  command = plan

  variables {
    tags = { ManagedBy = "terraform", Role = "db", DrRole = "hot-standby" }
  }

  assert {
    condition     = aws_instance.this.tags["Role"] == "restore" && aws_instance.this.tags["ManagedBy"] == "terraform" && aws_instance.this.tags["DrRole"] == "hot-standby"
    error_message = "caller tags are added, but Role stays restore"
  }
}

run "outputs_name_the_created_host" {
  command = apply

  override_resource {
    target = aws_instance.this
    values = {
      id                = "i-0123456789abcdef0"
      private_ip        = "10.20.2.4"
      availability_zone = "eu-west-1b"
    }
  }

  assert {
    condition     = output.instance_id == "i-0123456789abcdef0" && output.private_ip == "10.20.2.4"
    error_message = "instance_id and private_ip outputs must be the instance's"
  }
  assert {
    condition     = output.run_id == "20250101T120000Z-RB-DR-006"
    error_message = "run_id output must be the RestoreRun tag"
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
