terraform {
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100.0, < 6.0.0"
    }
  }

  # terraform init -backend-config=backend.hcl (bucket and lock table in the
  # control region, us-west-2: see ../lab/README.md for why).
  backend "s3" {}
}
