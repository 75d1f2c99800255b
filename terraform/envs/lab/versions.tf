terraform {
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100.0, < 6.0.0"
    }
  }

  # Partial configuration: the values are in backend.lab.hcl (terraform init
  # -backend-config=backend.lab.hcl); the endpoint comes from AWS_ENDPOINT_URL.
  backend "s3" {}
}
