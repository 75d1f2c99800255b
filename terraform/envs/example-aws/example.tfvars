# terraform plan -var-file=example.tfvars (ids are placeholders)
ami_ids = {
  us-east  = "ami-0123456789abcdef0"
  eu-west  = "ami-0123456789abcdef1"
  ap-south = "ami-0123456789abcdef2"
}
operator_cidrs = ["10.0.0.0/24"]
