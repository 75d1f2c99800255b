terraform {
  required_version = ">= 1.9"
  # No providers: terraform_data is built in, so the demo needs no download and
  # no provider mirror. State uses the implicit local backend.
}
