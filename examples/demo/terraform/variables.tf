variable "out_dir" {
  type        = string
  description = "Directory the demo writes its marker file into (created if missing)."

  validation {
    condition     = startswith(var.out_dir, "/")
    error_message = "out_dir must be an absolute path."
  }
}

variable "message" {
  type        = string
  description = "Text written into the marker file."
  default     = "written by terraform"
}
