# The lab's settings (loaded automatically). A failover scales a region with
# -var 'capacity_overrides={"eu-west"={app=2}}' or a -var-file; lab.reset applies
# without overrides to return to this baseline.

estate         = "lab"
control_region = "us-west-2"

capacity = {
  us-east  = { db = 2, app = 2 }
  eu-west  = { db = 1, app = 1 }
  ap-south = { db = 1, app = 0 }
}

# moto's built-in Ubuntu 16.04 image, present in every region it emulates.
ami_ids = {
  us-east  = "ami-785db401"
  eu-west  = "ami-785db401"
  ap-south = "ami-785db401"
}

# The root namespace's end of the lab link (drk-root 10.77.0.1/30).
operator_cidrs = ["10.77.0.0/30"]

# The moto server has no IAM credential checks, account lookup or instance metadata,
# and serves S3 on one host name.
aws_provider = {
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true
}

scratch = true

# Hosts resolve lab.internal through the lab's own resolver (10.77.0.2), not the
# VPC's; leaving the attribute off saves the provider's fixed ~10 s wait per VPC.
enable_dns_hostnames = false
