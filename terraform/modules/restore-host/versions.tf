terraform {
  # The estate's modules share one floor (modules/region needs 1.11 for write-only
  # attributes); the tests use override_during, also 1.11.
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100.0, < 6.0.0"
    }
  }
}
