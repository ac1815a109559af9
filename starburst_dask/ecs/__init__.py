"""ECS: launching and describing tasks, their network, and the Fargate vCPU quota."""
