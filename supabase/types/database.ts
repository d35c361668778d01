export type Json =
  | string
  | number
  | boolean
  | null
  | { [key: string]: Json | undefined }
  | Json[]

export type Database = {
  public: {
    Tables: {
      artists: {
        Row: {
          created_at: string
          created_by: string | null
          genres: string[]
          id: string
          image_url: string | null
          name: string
          org_id: string
          updated_at: string
        }
        Insert: {
          created_at?: string
          created_by?: string | null
          genres?: string[]
          id?: string
          image_url?: string | null
          name: string
          org_id: string
          updated_at?: string
        }
        Update: {
          created_at?: string
          created_by?: string | null
          genres?: string[]
          id?: string
          image_url?: string | null
          name?: string
          org_id?: string
          updated_at?: string
        }
        Relationships: [
          {
            foreignKeyName: "artists_org_id_fkey"
            columns: ["org_id"]
            isOneToOne: false
            referencedRelation: "organizations"
            referencedColumns: ["id"]
          },
        ]
      }
      audit_log: {
        Row: {
          action: string
          actor_id: string | null
          created_at: string
          id: number
          new_data: Json | null
          old_data: Json | null
          org_id: string | null
          target_id: string | null
          target_table: string
        }
        Insert: {
          action: string
          actor_id?: string | null
          created_at?: string
          id?: never
          new_data?: Json | null
          old_data?: Json | null
          org_id?: string | null
          target_id?: string | null
          target_table: string
        }
        Update: {
          action?: string
          actor_id?: string | null
          created_at?: string
          id?: never
          new_data?: Json | null
          old_data?: Json | null
          org_id?: string | null
          target_id?: string | null
          target_table?: string
        }
        Relationships: []
      }
      campaigns: {
        Row: {
          artist_id: string
          budget: number | null
          created_at: string
          created_by: string | null
          currency: string
          ends_on: string | null
          goals: NonNullable<Json>
          id: string
          name: string
          notes: string | null
          org_id: string
          starts_on: string
          status: Database["public"]["Enums"]["campaign_status"]
          updated_at: string
        }
        Insert: {
          artist_id: string
          budget?: number | null
          created_at?: string
          created_by?: string | null
          currency?: string
          ends_on?: string | null
          goals?: NonNullable<Json>
          id?: string
          name: string
          notes?: string | null
          org_id: string
          starts_on: string
          status?: Database["public"]["Enums"]["campaign_status"]
          updated_at?: string
        }
        Update: {
          artist_id?: string
          budget?: number | null
          created_at?: string
          created_by?: string | null
          currency?: string
          ends_on?: string | null
          goals?: NonNullable<Json>
          id?: string
          name?: string
          notes?: string | null
          org_id?: string
          starts_on?: string
          status?: Database["public"]["Enums"]["campaign_status"]
          updated_at?: string
        }
        Relationships: [
          {
            foreignKeyName: "campaigns_org_id_artist_id_fkey"
            columns: ["org_id", "artist_id"]
            isOneToOne: false
            referencedRelation: "artists"
            referencedColumns: ["org_id", "id"]
          },
          {
            foreignKeyName: "campaigns_org_id_fkey"
            columns: ["org_id"]
            isOneToOne: false
            referencedRelation: "organizations"
            referencedColumns: ["id"]
          },
        ]
      }
      connected_accounts: {
        Row: {
          artist_id: string
          connected_by: string | null
          created_at: string
          display_name: string | null
          external_id: string
          id: string
          last_error: string | null
          last_synced_at: string | null
          next_sync_at: string | null
          org_id: string
          provider: Database["public"]["Enums"]["provider"]
          status: Database["public"]["Enums"]["account_status"]
          updated_at: string
        }
        Insert: {
          artist_id: string
          connected_by?: string | null
          created_at?: string
          display_name?: string | null
          external_id: string
          id?: string
          last_error?: string | null
          last_synced_at?: string | null
          next_sync_at?: string | null
          org_id: string
          provider: Database["public"]["Enums"]["provider"]
          status?: Database["public"]["Enums"]["account_status"]
          updated_at?: string
        }
        Update: {
          artist_id?: string
          connected_by?: string | null
          created_at?: string
          display_name?: string | null
          external_id?: string
          id?: string
          last_error?: string | null
          last_synced_at?: string | null
          next_sync_at?: string | null
          org_id?: string
          provider?: Database["public"]["Enums"]["provider"]
          status?: Database["public"]["Enums"]["account_status"]
          updated_at?: string
        }
        Relationships: [
          {
            foreignKeyName: "connected_accounts_org_id_artist_id_fkey"
            columns: ["org_id", "artist_id"]
            isOneToOne: false
            referencedRelation: "artists"
            referencedColumns: ["org_id", "id"]
          },
          {
            foreignKeyName: "connected_accounts_org_id_fkey"
            columns: ["org_id"]
            isOneToOne: false
            referencedRelation: "organizations"
            referencedColumns: ["id"]
          },
        ]
      }
      documents: {
        Row: {
          artist_id: string | null
          content: string
          content_tsv: unknown
          created_at: string
          embedding: string | null
          embedding_model: string | null
          id: number
          org_id: string
          period_end: string | null
          period_start: string | null
          source: string
          source_key: string
          updated_at: string
        }
        Insert: {
          artist_id?: string | null
          content: string
          content_tsv?: never
          created_at?: string
          embedding?: string | null
          embedding_model?: string | null
          id?: never
          org_id: string
          period_end?: string | null
          period_start?: string | null
          source: string
          source_key: string
          updated_at?: string
        }
        Update: {
          artist_id?: string | null
          content?: string
          content_tsv?: never
          created_at?: string
          embedding?: string | null
          embedding_model?: string | null
          id?: never
          org_id?: string
          period_end?: string | null
          period_start?: string | null
          source?: string
          source_key?: string
          updated_at?: string
        }
        Relationships: [
          {
            foreignKeyName: "documents_org_id_artist_id_fkey"
            columns: ["org_id", "artist_id"]
            isOneToOne: false
            referencedRelation: "artists"
            referencedColumns: ["org_id", "id"]
          },
          {
            foreignKeyName: "documents_org_id_fkey"
            columns: ["org_id"]
            isOneToOne: false
            referencedRelation: "organizations"
            referencedColumns: ["id"]
          },
        ]
      }
      insights: {
        Row: {
          account_id: string | null
          answer_mode: string | null
          artist_id: string | null
          body: string
          citations: NonNullable<Json>
          created_at: string
          created_by: string | null
          day: string | null
          dedupe_key: string | null
          evidence: NonNullable<Json>
          id: string
          kind: Database["public"]["Enums"]["insight_kind"]
          metric: string | null
          org_id: string
          question: string | null
          title: string
        }
        Insert: {
          account_id?: string | null
          answer_mode?: string | null
          artist_id?: string | null
          body: string
          citations?: NonNullable<Json>
          created_at?: string
          created_by?: string | null
          day?: string | null
          dedupe_key?: string | null
          evidence?: NonNullable<Json>
          id?: string
          kind: Database["public"]["Enums"]["insight_kind"]
          metric?: string | null
          org_id: string
          question?: string | null
          title: string
        }
        Update: {
          account_id?: string | null
          answer_mode?: string | null
          artist_id?: string | null
          body?: string
          citations?: NonNullable<Json>
          created_at?: string
          created_by?: string | null
          day?: string | null
          dedupe_key?: string | null
          evidence?: NonNullable<Json>
          id?: string
          kind?: Database["public"]["Enums"]["insight_kind"]
          metric?: string | null
          org_id?: string
          question?: string | null
          title?: string
        }
        Relationships: [
          {
            foreignKeyName: "insights_org_id_account_id_fkey"
            columns: ["org_id", "account_id"]
            isOneToOne: false
            referencedRelation: "connected_accounts"
            referencedColumns: ["org_id", "id"]
          },
          {
            foreignKeyName: "insights_org_id_artist_id_fkey"
            columns: ["org_id", "artist_id"]
            isOneToOne: false
            referencedRelation: "artists"
            referencedColumns: ["org_id", "id"]
          },
          {
            foreignKeyName: "insights_org_id_fkey"
            columns: ["org_id"]
            isOneToOne: false
            referencedRelation: "organizations"
            referencedColumns: ["id"]
          },
        ]
      }
      invitations: {
        Row: {
          accepted_at: string | null
          accepted_by: string | null
          created_at: string
          email: string
          expires_at: string
          id: string
          invited_by: string | null
          org_id: string
          revoked_at: string | null
          role: Database["public"]["Enums"]["org_role"]
        }
        Insert: {
          accepted_at?: string | null
          accepted_by?: string | null
          created_at?: string
          email: string
          expires_at?: string
          id?: string
          invited_by?: string | null
          org_id: string
          revoked_at?: string | null
          role?: Database["public"]["Enums"]["org_role"]
        }
        Update: {
          accepted_at?: string | null
          accepted_by?: string | null
          created_at?: string
          email?: string
          expires_at?: string
          id?: string
          invited_by?: string | null
          org_id?: string
          revoked_at?: string | null
          role?: Database["public"]["Enums"]["org_role"]
        }
        Relationships: [
          {
            foreignKeyName: "invitations_org_id_fkey"
            columns: ["org_id"]
            isOneToOne: false
            referencedRelation: "organizations"
            referencedColumns: ["id"]
          },
        ]
      }
      memberships: {
        Row: {
          created_at: string
          invited_by: string | null
          org_id: string
          role: Database["public"]["Enums"]["org_role"]
          updated_at: string
          user_id: string
        }
        Insert: {
          created_at?: string
          invited_by?: string | null
          org_id: string
          role?: Database["public"]["Enums"]["org_role"]
          updated_at?: string
          user_id: string
        }
        Update: {
          created_at?: string
          invited_by?: string | null
          org_id?: string
          role?: Database["public"]["Enums"]["org_role"]
          updated_at?: string
          user_id?: string
        }
        Relationships: [
          {
            foreignKeyName: "memberships_org_id_fkey"
            columns: ["org_id"]
            isOneToOne: false
            referencedRelation: "organizations"
            referencedColumns: ["id"]
          },
        ]
      }
      metric_snapshots: {
        Row: {
          account_id: string
          endpoint: string
          fetched_at: string
          id: number
          org_id: string
          payload: NonNullable<Json>
          sync_run_id: string | null
        }
        Insert: {
          account_id: string
          endpoint: string
          fetched_at?: string
          id?: never
          org_id: string
          payload: NonNullable<Json>
          sync_run_id?: string | null
        }
        Update: {
          account_id?: string
          endpoint?: string
          fetched_at?: string
          id?: never
          org_id?: string
          payload?: NonNullable<Json>
          sync_run_id?: string | null
        }
        Relationships: [
          {
            foreignKeyName: "metric_snapshots_org_id_account_id_fkey"
            columns: ["org_id", "account_id"]
            isOneToOne: false
            referencedRelation: "connected_accounts"
            referencedColumns: ["org_id", "id"]
          },
          {
            foreignKeyName: "metric_snapshots_org_id_sync_run_id_fkey"
            columns: ["org_id", "sync_run_id"]
            isOneToOne: false
            referencedRelation: "sync_runs"
            referencedColumns: ["org_id", "id"]
          },
        ]
      }
      metrics: {
        Row: {
          account_id: string
          day: string
          fetched_at: string
          metric: string
          note: string | null
          org_id: string
          sync_run_id: string | null
          value: number | null
        }
        Insert: {
          account_id: string
          day: string
          fetched_at?: string
          metric: string
          note?: string | null
          org_id: string
          sync_run_id?: string | null
          value?: number | null
        }
        Update: {
          account_id?: string
          day?: string
          fetched_at?: string
          metric?: string
          note?: string | null
          org_id?: string
          sync_run_id?: string | null
          value?: number | null
        }
        Relationships: [
          {
            foreignKeyName: "metrics_org_id_account_id_fkey"
            columns: ["org_id", "account_id"]
            isOneToOne: false
            referencedRelation: "connected_accounts"
            referencedColumns: ["org_id", "id"]
          },
        ]
      }
      notifications: {
        Row: {
          body: string | null
          created_at: string
          data: NonNullable<Json>
          id: string
          kind: string
          org_id: string | null
          read_at: string | null
          title: string
          user_id: string
        }
        Insert: {
          body?: string | null
          created_at?: string
          data?: NonNullable<Json>
          id?: string
          kind: string
          org_id?: string | null
          read_at?: string | null
          title: string
          user_id: string
        }
        Update: {
          body?: string | null
          created_at?: string
          data?: NonNullable<Json>
          id?: string
          kind?: string
          org_id?: string | null
          read_at?: string | null
          title?: string
          user_id?: string
        }
        Relationships: [
          {
            foreignKeyName: "notifications_org_id_fkey"
            columns: ["org_id"]
            isOneToOne: false
            referencedRelation: "organizations"
            referencedColumns: ["id"]
          },
        ]
      }
      organizations: {
        Row: {
          created_at: string
          created_by: string | null
          id: string
          name: string
          slug: string
          updated_at: string
        }
        Insert: {
          created_at?: string
          created_by?: string | null
          id?: string
          name: string
          slug: string
          updated_at?: string
        }
        Update: {
          created_at?: string
          created_by?: string | null
          id?: string
          name?: string
          slug?: string
          updated_at?: string
        }
        Relationships: []
      }
      profiles: {
        Row: {
          avatar_url: string | null
          created_at: string
          full_name: string | null
          id: string
          updated_at: string
        }
        Insert: {
          avatar_url?: string | null
          created_at?: string
          full_name?: string | null
          id: string
          updated_at?: string
        }
        Update: {
          avatar_url?: string | null
          created_at?: string
          full_name?: string | null
          id?: string
          updated_at?: string
        }
        Relationships: []
      }
      role_permissions: {
        Row: {
          permission: string
          role: Database["public"]["Enums"]["org_role"]
        }
        Insert: {
          permission: string
          role: Database["public"]["Enums"]["org_role"]
        }
        Update: {
          permission?: string
          role?: Database["public"]["Enums"]["org_role"]
        }
        Relationships: []
      }
      sync_runs: {
        Row: {
          account_id: string
          attempts: number
          days_fetched: number
          deferred_reason: string | null
          deferred_until: string | null
          error: string | null
          finished_at: string | null
          id: string
          metrics_written: number
          org_id: string
          queued_at: string
          requested_by: string | null
          started_at: string | null
          status: Database["public"]["Enums"]["sync_status"]
          trigger: Database["public"]["Enums"]["sync_trigger"]
        }
        Insert: {
          account_id: string
          attempts?: number
          days_fetched?: number
          deferred_reason?: string | null
          deferred_until?: string | null
          error?: string | null
          finished_at?: string | null
          id?: string
          metrics_written?: number
          org_id: string
          queued_at?: string
          requested_by?: string | null
          started_at?: string | null
          status?: Database["public"]["Enums"]["sync_status"]
          trigger: Database["public"]["Enums"]["sync_trigger"]
        }
        Update: {
          account_id?: string
          attempts?: number
          days_fetched?: number
          deferred_reason?: string | null
          deferred_until?: string | null
          error?: string | null
          finished_at?: string | null
          id?: string
          metrics_written?: number
          org_id?: string
          queued_at?: string
          requested_by?: string | null
          started_at?: string | null
          status?: Database["public"]["Enums"]["sync_status"]
          trigger?: Database["public"]["Enums"]["sync_trigger"]
        }
        Relationships: [
          {
            foreignKeyName: "sync_runs_org_id_account_id_fkey"
            columns: ["org_id", "account_id"]
            isOneToOne: false
            referencedRelation: "connected_accounts"
            referencedColumns: ["org_id", "id"]
          },
          {
            foreignKeyName: "sync_runs_org_id_fkey"
            columns: ["org_id"]
            isOneToOne: false
            referencedRelation: "organizations"
            referencedColumns: ["id"]
          },
        ]
      }
      webhook_deliveries: {
        Row: {
          attempts: number
          created_at: string
          delivered_at: string | null
          endpoint_id: string
          event_id: string
          event_type: string
          id: string
          last_error: string | null
          last_status_code: number | null
          next_attempt_at: string | null
          org_id: string
          retry_until: string
          status: Database["public"]["Enums"]["webhook_delivery_status"]
          updated_at: string
        }
        Insert: {
          attempts?: number
          created_at?: string
          delivered_at?: string | null
          endpoint_id: string
          event_id: string
          event_type: string
          id?: string
          last_error?: string | null
          last_status_code?: number | null
          next_attempt_at?: string | null
          org_id: string
          retry_until: string
          status?: Database["public"]["Enums"]["webhook_delivery_status"]
          updated_at?: string
        }
        Update: {
          attempts?: number
          created_at?: string
          delivered_at?: string | null
          endpoint_id?: string
          event_id?: string
          event_type?: string
          id?: string
          last_error?: string | null
          last_status_code?: number | null
          next_attempt_at?: string | null
          org_id?: string
          retry_until?: string
          status?: Database["public"]["Enums"]["webhook_delivery_status"]
          updated_at?: string
        }
        Relationships: [
          {
            foreignKeyName: "webhook_deliveries_org_id_endpoint_id_fkey"
            columns: ["org_id", "endpoint_id"]
            isOneToOne: false
            referencedRelation: "webhook_endpoints"
            referencedColumns: ["org_id", "id"]
          },
        ]
      }
      webhook_delivery_attempts: {
        Row: {
          attempt: number
          delivery_id: string
          duration_ms: number | null
          error: string | null
          finished_at: string | null
          id: number
          org_id: string
          outcome: string | null
          response_excerpt: string | null
          started_at: string
          status_code: number | null
        }
        Insert: {
          attempt: number
          delivery_id: string
          duration_ms?: number | null
          error?: string | null
          finished_at?: string | null
          id?: never
          org_id: string
          outcome?: string | null
          response_excerpt?: string | null
          started_at?: string
          status_code?: number | null
        }
        Update: {
          attempt?: number
          delivery_id?: string
          duration_ms?: number | null
          error?: string | null
          finished_at?: string | null
          id?: never
          org_id?: string
          outcome?: string | null
          response_excerpt?: string | null
          started_at?: string
          status_code?: number | null
        }
        Relationships: [
          {
            foreignKeyName: "webhook_delivery_attempts_org_id_delivery_id_fkey"
            columns: ["org_id", "delivery_id"]
            isOneToOne: false
            referencedRelation: "webhook_deliveries"
            referencedColumns: ["org_id", "id"]
          },
          {
            foreignKeyName: "webhook_delivery_attempts_org_id_fkey"
            columns: ["org_id"]
            isOneToOne: false
            referencedRelation: "organizations"
            referencedColumns: ["id"]
          },
        ]
      }
      webhook_endpoints: {
        Row: {
          active: boolean
          created_at: string
          created_by: string | null
          description: string | null
          events: string[]
          id: string
          org_id: string
          secret_hint: string
          secret_rotated_at: string | null
          updated_at: string
          url: string
        }
        Insert: {
          active?: boolean
          created_at?: string
          created_by?: string | null
          description?: string | null
          events: string[]
          id?: string
          org_id: string
          secret_hint: string
          secret_rotated_at?: string | null
          updated_at?: string
          url: string
        }
        Update: {
          active?: boolean
          created_at?: string
          created_by?: string | null
          description?: string | null
          events?: string[]
          id?: string
          org_id?: string
          secret_hint?: string
          secret_rotated_at?: string | null
          updated_at?: string
          url?: string
        }
        Relationships: [
          {
            foreignKeyName: "webhook_endpoints_org_id_fkey"
            columns: ["org_id"]
            isOneToOne: false
            referencedRelation: "organizations"
            referencedColumns: ["id"]
          },
        ]
      }
      webhook_event_types: {
        Row: {
          description: string
          name: string
        }
        Insert: {
          description: string
          name: string
        }
        Update: {
          description?: string
          name?: string
        }
        Relationships: []
      }
    }
    Views: {
      [_ in never]: never
    }
    Functions: {
      accept_invitation: { Args: { token: string }; Returns: string }
      artist_overview: { Args: { artist_id: string }; Returns: Json }
      create_organization: {
        Args: { name: string; slug?: string }
        Returns: {
          created_at: string
          created_by: string | null
          id: string
          name: string
          slug: string
          updated_at: string
        }
        SetofOptions: {
          from: "*"
          to: "organizations"
          isOneToOne: true
          isSetofReturn: false
        }
      }
      create_webhook_endpoint: {
        Args: {
          description?: string
          events: string[]
          org_id: string
          url: string
        }
        Returns: Json
      }
      delete_webhook_endpoint: {
        Args: { endpoint_id: string }
        Returns: undefined
      }
      invite_member: {
        Args: {
          email: string
          org_id: string
          role?: Database["public"]["Enums"]["org_role"]
        }
        Returns: Json
      }
      mark_all_notifications_read: {
        Args: Record<PropertyKey, never>
        Returns: number
      }
      mark_notification_read: {
        Args: { notification_id: string }
        Returns: number
      }
      metrics_summary: {
        Args: { end_day: string; org_id: string; start_day: string }
        Returns: {
          abs_change: number
          account_id: string
          artist_id: string
          baseline_day: string
          baseline_value: number
          latest_day: string
          latest_value: number
          metric: string
          pct_change: number
          provider: Database["public"]["Enums"]["provider"]
        }[]
      }
      metrics_timeseries: {
        Args: {
          account_ids: string[]
          bucket?: string
          end_day: string
          metric: string
          start_day: string
        }
        Returns: {
          account_id: string
          bucket_start: string
          days_not_provided: number
          days_reported: number
          value_avg: number
          value_last: number
          value_max: number
          value_min: number
          value_sum: number
        }[]
      }
      my_permissions: { Args: { org_id: string }; Returns: string[] }
      org_members: {
        Args: { org_id: string }
        Returns: {
          avatar_url: string
          email: string
          full_name: string
          joined_at: string
          role: Database["public"]["Enums"]["org_role"]
          user_id: string
        }[]
      }
      remove_member: {
        Args: { org_id: string; user_id: string }
        Returns: undefined
      }
      replay_webhook_delivery: { Args: { delivery_id: string }; Returns: Json }
      request_sync: { Args: { account_id: string }; Returns: string }
      revoke_invitation: { Args: { invitation_id: string }; Returns: undefined }
      rotate_webhook_secret: {
        Args: { endpoint_id: string; overlap_seconds?: number }
        Returns: Json
      }
      search_documents: {
        Args: {
          artist_id?: string
          match_count?: number
          mode?: string
          org_id: string
          query: string
          query_embedding?: string
        }
        Returns: {
          chunk_artist_id: string
          content: string
          fulltext_rank: number
          id: number
          period_end: string
          period_start: string
          score: number
          source: string
          vector_rank: number
        }[]
      }
      set_member_role: {
        Args: {
          org_id: string
          role: Database["public"]["Enums"]["org_role"]
          user_id: string
        }
        Returns: undefined
      }
      top_movers: {
        Args: {
          max_results?: number
          metric: string
          org_id: string
          window_days?: number
        }
        Returns: {
          abs_change: number
          account_id: string
          artist_id: string
          artist_name: string
          end_day: string
          end_value: number
          pct_change: number
          provider: Database["public"]["Enums"]["provider"]
          start_day: string
          start_value: number
        }[]
      }
      update_webhook_endpoint: {
        Args: {
          active?: boolean
          description?: string
          endpoint_id: string
          events?: string[]
          url?: string
        }
        Returns: {
          active: boolean
          created_at: string
          created_by: string | null
          description: string | null
          events: string[]
          id: string
          org_id: string
          secret_hint: string
          secret_rotated_at: string | null
          updated_at: string
          url: string
        }
        SetofOptions: {
          from: "*"
          to: "webhook_endpoints"
          isOneToOne: true
          isSetofReturn: false
        }
      }
    }
    Enums: {
      account_status: "active" | "needs_reauth" | "revoked" | "error"
      campaign_status: "draft" | "active" | "paused" | "completed" | "cancelled"
      insight_kind: "anomaly" | "answer"
      org_role: "viewer" | "analyst" | "manager" | "admin" | "owner"
      provider: "spotify" | "youtube" | "instagram" | "soundcloud" | "tiktok"
      sync_status: "queued" | "running" | "succeeded" | "failed"
      sync_trigger: "schedule" | "manual" | "connect"
      webhook_delivery_status: "pending" | "delivered" | "failed" | "dead"
    }
    CompositeTypes: {
      [_ in never]: never
    }
  }
}

type DatabaseWithoutInternals = Omit<Database, "__InternalSupabase">

type DefaultSchema = DatabaseWithoutInternals[Extract<keyof Database, "public">]

export type Tables<
  DefaultSchemaTableNameOrOptions extends
    | keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends (DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
        DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])
    : never) = never,
> = DefaultSchemaTableNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
      DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])[TableName] extends {
      Row: infer R
    }
    ? R
    : never
  : DefaultSchemaTableNameOrOptions extends keyof (DefaultSchema["Tables"] &
        DefaultSchema["Views"])
    ? (DefaultSchema["Tables"] &
        DefaultSchema["Views"])[DefaultSchemaTableNameOrOptions] extends {
        Row: infer R
      }
      ? R
      : never
    : never

export type TablesInsert<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends (DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never) = never,
> = DefaultSchemaTableNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Insert: infer I
    }
    ? I
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
    ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
        Insert: infer I
      }
      ? I
      : never
    : never

export type TablesUpdate<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends (DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never) = never,
> = DefaultSchemaTableNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Update: infer U
    }
    ? U
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
    ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
        Update: infer U
      }
      ? U
      : never
    : never

export type Enums<
  DefaultSchemaEnumNameOrOptions extends
    | keyof DefaultSchema["Enums"]
    | { schema: keyof DatabaseWithoutInternals },
  EnumName extends (DefaultSchemaEnumNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"]
    : never) = never,
> = DefaultSchemaEnumNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"][EnumName]
  : DefaultSchemaEnumNameOrOptions extends keyof DefaultSchema["Enums"]
    ? DefaultSchema["Enums"][DefaultSchemaEnumNameOrOptions]
    : never

export type CompositeTypes<
  PublicCompositeTypeNameOrOptions extends
    | keyof DefaultSchema["CompositeTypes"]
    | { schema: keyof DatabaseWithoutInternals },
  CompositeTypeName extends (PublicCompositeTypeNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"]
    : never) = never,
> = PublicCompositeTypeNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"][CompositeTypeName]
  : PublicCompositeTypeNameOrOptions extends keyof DefaultSchema["CompositeTypes"]
    ? DefaultSchema["CompositeTypes"][PublicCompositeTypeNameOrOptions]
    : never

export const Constants = {
  public: {
    Enums: {
      account_status: ["active", "needs_reauth", "revoked", "error"],
      campaign_status: ["draft", "active", "paused", "completed", "cancelled"],
      insight_kind: ["anomaly", "answer"],
      org_role: ["viewer", "analyst", "manager", "admin", "owner"],
      provider: ["spotify", "youtube", "instagram", "soundcloud", "tiktok"],
      sync_status: ["queued", "running", "succeeded", "failed"],
      sync_trigger: ["schedule", "manual", "connect"],
      webhook_delivery_status: ["pending", "delivered", "failed", "dead"],
    },
  },
} as const

