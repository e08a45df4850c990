import { ConfigurableModuleBuilder } from '@nestjs/common';
import { ChatModuleOptions } from './chat.options';

/** `forRoot` / `forRootAsync` for free, as in nestjs/cache-manager. */
export const {
  ConfigurableModuleClass: ChatConfigurableModule,
  MODULE_OPTIONS_TOKEN: CHAT_MODULE_OPTIONS,
  OPTIONS_TYPE: CHAT_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: CHAT_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<ChatModuleOptions>().setClassMethodName('forRoot').build();
