# terraform init -backend-config=backend.lab.hcl
# State lives in the control region (us-west-2), not in any region the lab fails
# over from; see README.md. The endpoint comes from AWS_ENDPOINT_URL.
bucket                      = "drkit-lab-tfstate"
key                         = "envs/lab/terraform.tfstate"
region                      = "us-west-2"
dynamodb_table              = "drkit-lab-tflock"
encrypt                     = true
use_path_style              = true
skip_credentials_validation = true
skip_requesting_account_id  = true
skip_metadata_api_check     = true
skip_region_validation      = true
