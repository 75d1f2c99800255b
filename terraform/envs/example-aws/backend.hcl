# terraform init -backend-config=backend.hcl
# Bucket and lock table in the control region (us-west-2), created once per
# account with drkit.lab.tfstate.ensure_state_backend(None, ...).
bucket         = "drkit-prod-tfstate-123456789012"
key            = "envs/prod/terraform.tfstate"
region         = "us-west-2"
dynamodb_table = "drkit-prod-tflock"
encrypt        = true
